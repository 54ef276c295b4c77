"""The contract every local degradation family implements.

A degradation works on a float32 ``H x W x 3`` patch with values in
``[0, 255]`` — the region's box plus :meth:`Degradation.margin` pixels of
context on each side (so filters see real neighbours, not a padded edge) — and
returns a patch of the same shape. It does not blend or clip: :mod:`qprobe.bench.inject`
blends the result back through a feathered mask *inside the box only*.

Parameters are per-severity tuples (severity 1 = barely visible,
5 = severe) declared as dataclass fields, so a recipe can override them::

    create_degradation("gaussian_blur", sigma=(0.8, 1.5, 2.5, 4.0, 6.0))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def pick(values: tuple[float, ...], severity: int) -> float:
    """The parameter of ``severity`` (1-based) from a 5-tuple, with a clear error."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if len(values) != len(SEVERITIES):
        raise ValueError(f"expected {len(SEVERITIES)} per-severity values, got {values!r}")
    return float(values[severity - 1])


@dataclass
class Degradation(ABC):
    """Base class: subclasses are dataclasses of per-severity parameter tuples."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, tuple)):
                if len(value) != len(SEVERITIES):
                    raise ValueError(
                        f"{type(self).__name__}.{f.name} needs {len(SEVERITIES)} values "
                        f"(one per severity), got {value!r}"
                    )
                setattr(self, f.name, tuple(float(v) for v in value))

    def margin(self, severity: int) -> int:
        """Context pixels needed around the box for an exact result inside it."""
        return 0

    def params(self, severity: int) -> dict[str, Any]:
        """The concrete parameters used at ``severity`` (written to the degradation log)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = pick(value, severity) if isinstance(value, tuple) else value
        return out

    def sample(self, severity: int, rng: np.random.Generator) -> dict[str, Any]:
        """Random parameters of one application (e.g. a motion direction).

        They are drawn before :meth:`apply`, passed to it as keyword arguments
        and written to the degradation log, so every injected defect can be
        described and reproduced exactly.
        """
        return {}

    @abstractmethod
    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        """Degrade a float32 ``H x W x 3`` patch in ``[0, 255]``; return the same shape.

        ``sampled`` holds the output of :meth:`sample`; ``rng`` serves the
        remaining randomness (noise fields).
        """


def luma(patch: np.ndarray) -> np.ndarray:
    """BT.601 luma of a float RGB patch."""
    return patch[..., 0] * 0.299 + patch[..., 1] * 0.587 + patch[..., 2] * 0.114
