"""Exceptions users can act on.

Every error qprobe raises on purpose derives from :class:`QProbeError` and
carries a message that says what went wrong *and* what to do about it.
"""

from __future__ import annotations


class QProbeError(Exception):
    """Base class of all deliberate qprobe errors."""


class ImageLoadError(QProbeError):
    """An image file could not be read (missing, empty, truncated, corrupt, too large)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ManifestError(QProbeError):
    """A manifest row or file does not follow the schema."""


class ConfigError(QProbeError):
    """A configuration value is missing or invalid."""


class MissingWeightsError(QProbeError):
    """A model or weight file that a component needs is not where it was looked for."""


class ParseError(QProbeError):
    """A model's output could not be parsed into an action."""


class UnknownNameError(QProbeError, KeyError):
    """A registry lookup used a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
