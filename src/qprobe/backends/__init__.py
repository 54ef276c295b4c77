"""Scoring backends: ``create_backend(name, **overrides)``, ``list_backends(pattern)``.

Backends register themselves in :data:`BACKENDS` with a decorator; their
modules are imported lazily on first lookup and import heavy libraries
(torch, transformers) only when a backend is created.
"""

from __future__ import annotations

from typing import Any

from qprobe.registry import Registry

BACKENDS: Registry[Any] = Registry(
    "backend",
    lazy_modules=(
        "qprobe.backends.dummy",
        "qprobe.backends.classic",
        "qprobe.backends.transformers_vl",
        "qprobe.backends.openai_api",
    ),
)

DEFAULT_BACKEND = "classic"


def create_backend(name: str = DEFAULT_BACKEND, **overrides: Any) -> Any:
    """Build the backend registered as ``name`` with keyword ``overrides``."""
    return BACKENDS.create(name, **overrides)


def list_backends(pattern: str = "*", **where: Any) -> list[str]:
    """Names of registered backends matching a glob ``pattern`` and metadata."""
    return BACKENDS.list(pattern, **where)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "create_backend", "list_backends"]
