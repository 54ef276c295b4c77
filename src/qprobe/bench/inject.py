"""Local injection: one degradation, inside one region, through a feathered mask.

Only the box and a context margin are ever touched: the patch ``box +
margin`` is cut out, degraded in float32, and blended back *inside the box*
with a mask that is 1 in the box's interior and falls smoothly (smoothstep)
to 0 at the box border over ``feather`` pixels. Pixels outside the box are
never written, so they stay bit-identical to the input; the recorded box is
the exact extent of the change. Cost grows with the box, not the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from qprobe.bench.degradations import Degradation, create_degradation
from qprobe.types import Box, Defect

DEFAULT_FEATHER_FRAC = 0.12
"""Feather width as a fraction of the box's shorter side."""


def feather_width(box: Box, feather_frac: float = DEFAULT_FEATHER_FRAC) -> int:
    """Feather in pixels for ``box``: a fraction of its shorter side, at least 1."""
    return max(1, int(round(feather_frac * min(box.width, box.height))))


def _ramp(n: int, feather: int) -> np.ndarray:
    """1-D smoothstep ramp: 0 at both ends of ``n`` pixels, 1 from ``feather`` pixels in."""
    idx = np.arange(n, dtype=np.float32) + 0.5
    d = np.minimum(idx, n - idx) / np.float32(max(feather, 1))
    t = np.clip(d, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def box_mask(height: int, width: int, feather: int) -> np.ndarray:
    """Feathered rectangular mask of a ``height x width`` box (float32 in [0, 1])."""
    return np.outer(_ramp(height, feather), _ramp(width, feather)).astype(np.float32)


@lru_cache(maxsize=64)
def _degradation(name: str) -> Degradation:
    return create_degradation(name)


def _as_box(
    box_or_mask: Box | Sequence[float] | np.ndarray, shape: tuple[int, int]
) -> tuple[Box, np.ndarray | None]:
    h, w = shape
    if isinstance(box_or_mask, np.ndarray) and box_or_mask.ndim == 2:
        mask = np.asarray(box_or_mask, dtype=np.float32)
        if mask.shape != (h, w):
            raise ValueError(f"mask shape {mask.shape} does not match the image {(h, w)}")
        ys, xs = np.nonzero(mask > 0)
        if ys.size == 0:
            raise ValueError("the mask is empty: nothing to degrade")
        box = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        return box, np.clip(mask, 0.0, 1.0)
    box = box_or_mask if isinstance(box_or_mask, Box) else Box.from_list(list(box_or_mask))
    x1, y1, x2, y2 = box.clip(w, h).to_int()
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {box.to_list()} has no pixels inside the {w}x{h} image")
    return Box(float(x1), float(y1), float(x2), float(y2)), None


@dataclass(frozen=True)
class LocalResult:
    """What :func:`apply_local` did: the image, the defect and the exact parameters."""

    image: np.ndarray
    defect: Defect
    params: dict[str, Any]  # per-severity parameters plus the sampled random ones
    feather_px: int | None  # None when a caller-supplied mask was used


def apply_local(
    image_uint8: np.ndarray,
    box_or_mask: Box | Sequence[float] | np.ndarray,
    name: str,
    severity: int,
    seed: int | np.random.Generator,
    *,
    feather_frac: float = DEFAULT_FEATHER_FRAC,
    degradation: Degradation | None = None,
    inplace: bool = False,
) -> LocalResult:
    """:func:`inject_local`, also returning the parameters used (for the degradation log)."""
    img = np.asarray(image_uint8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    box, mask = _as_box(box_or_mask, (h, w))
    deg = degradation if degradation is not None else _degradation(name)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x1, y1, x2, y2 = box.to_int()
    m = deg.margin(severity)
    cx1, cy1, cx2, cy2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
    patch = img[cy1:cy2, cx1:cx2].astype(np.float32)
    sampled = deg.sample(severity, rng)
    degraded = np.asarray(deg.apply(patch, severity, rng, **sampled), dtype=np.float32)
    if degraded.shape != patch.shape:
        raise RuntimeError(f"degradation {name!r} changed the patch shape {patch.shape} -> {degraded.shape}")
    iy, ix = slice(y1 - cy1, y2 - cy1), slice(x1 - cx1, x2 - cx1)
    feather = None if mask is not None else feather_width(box, feather_frac)
    alpha = mask[y1:y2, x1:x2] if mask is not None else box_mask(y2 - y1, x2 - x1, feather or 1)
    orig = patch[iy, ix]
    blended = orig + alpha[:, :, None] * (degraded[iy, ix] - orig)
    out = img if inplace else img.copy()
    out[y1:y2, x1:x2] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    defect = Defect(bbox=box, type=name, severity=int(severity))
    return LocalResult(out, defect, {**deg.params(severity), **sampled}, feather)


def inject_local(
    image_uint8: np.ndarray,
    box_or_mask: Box | Sequence[float] | np.ndarray,
    name: str,
    severity: int,
    seed: int | np.random.Generator,
    *,
    feather_frac: float = DEFAULT_FEATHER_FRAC,
    degradation: Degradation | None = None,
    inplace: bool = False,
) -> tuple[np.ndarray, Defect]:
    """Apply degradation ``name`` at ``severity`` inside a box (or a soft mask).

    ``box_or_mask`` is a :class:`~qprobe.types.Box` / ``[x1, y1, x2, y2]`` (then
    a feathered rectangle is used) or a float ``H x W`` mask in ``[0, 1]`` (used
    as given; its bounding box is the defect box). Returns the degraded image
    (a copy unless ``inplace``) and the :class:`~qprobe.types.Defect` (box in
    integer pixels, ``type`` = the degradation name). The result is a function
    of the inputs and ``seed`` only.
    """
    res = apply_local(
        image_uint8,
        box_or_mask,
        name,
        severity,
        seed,
        feather_frac=feather_frac,
        degradation=degradation,
        inplace=inplace,
    )
    return res.image, res.defect
