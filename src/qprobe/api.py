"""The one-call Python API: ``qprobe.assess(image_or_path)``."""

from __future__ import annotations

from typing import Any

from qprobe.io import ImageSource
from qprobe.types import Assessment

_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}


def get_backend(backend: str = "classic", **options: Any) -> Any:
    """A backend instance, cached per (name, options) so weights load once."""
    key = (backend, tuple(sorted(options.items())))
    if key not in _CACHE:
        from qprobe.backends import create_backend

        _CACHE[key] = create_backend(backend, **options)
    return _CACHE[key]


def assess(
    image_or_path: ImageSource,
    backend: str = "classic",
    *,
    path: str | None = None,
    forced_probes: list[Any] | None = None,
    max_zooms: int | None = None,
    seed: int | None = None,
    **options: Any,
) -> Assessment:
    """Score one image (path, PIL image or uint8 array) with ``backend``.

    Returns an :class:`~qprobe.types.Assessment`: ``score`` on 1–5 (higher
    is better), ``defects`` with boxes in original pixels, the ``probes``
    (zoom boxes) and the replayable ``trajectory``. A file that cannot be
    read gives ``score=None`` and an ``error`` message instead of raising.
    ``options`` are passed to the backend's constructor.
    """
    scorer = get_backend(backend, **options)
    return scorer.assess(image_or_path, path=path, forced_probes=forced_probes, max_zooms=max_zooms, seed=seed)
