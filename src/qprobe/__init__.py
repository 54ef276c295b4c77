"""qprobe: high-resolution image quality assessment by context-aware agentic probing.

The public API is four functions and the result types::

    import qprobe
    a = qprobe.assess("photo.jpg")            # -> Assessment (score 1–5, defects, probes)
    backend = qprobe.create_backend("classic")
    rows = qprobe.load_dataset("clive", "../shared/data/clive")
    result = qprobe.evaluate("classic", rows)

``import qprobe`` is light: no torch, no network. Heavy modules load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "assess": "qprobe.api",
    "create_backend": "qprobe.backends",
    "list_backends": "qprobe.backends",
    "load_dataset": "qprobe.eval.datasets",
    "evaluate": "qprobe.eval.runner",
    "Assessment": "qprobe.types",
    "Box": "qprobe.types",
    "Defect": "qprobe.types",
    "Trajectory": "qprobe.types",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qprobe' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
