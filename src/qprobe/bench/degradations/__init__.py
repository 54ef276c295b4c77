"""Local degradation families, one module per family.

Every module in this package registers its class with ``@DEGRADATIONS.register``;
the modules are discovered from the package folder on first lookup, so a new
family is one new file and nothing else::

    from qprobe.bench.degradations import create_degradation, list_degradations
    list_degradations("*blur*")            # ['gaussian_blur', 'motion_blur']
    blur = create_degradation("gaussian_blur")
    out = blur.apply(patch_float32, severity=3, rng=np.random.default_rng(0))
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from qprobe.registry import Registry

from .base import SEVERITIES, Degradation

_HERE = Path(__file__).resolve().parent
_MODULES = tuple(
    f"{__name__}.{m.name}" for m in pkgutil.iter_modules([str(_HERE)]) if m.name not in ("base",)
)

DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation", lazy_modules=_MODULES)
"""name -> Degradation subclass; metadata: ``family`` (coarse type), ``description``."""


def create_degradation(name: str, **overrides: Any) -> Degradation:
    """Instantiate degradation ``name``; ``overrides`` replace its per-severity parameters."""
    return DEGRADATIONS.create(name, **overrides)


def list_degradations(pattern: str = "*", **where: Any) -> list[str]:
    """Sorted names matching a glob ``pattern`` (and metadata equalities, e.g. ``family="blur"``)."""
    return DEGRADATIONS.list(pattern, **where)


__all__ = ["DEGRADATIONS", "SEVERITIES", "Degradation", "create_degradation", "list_degradations"]
