"""Context-aware cropping: from a requested box to the crop the policy sees.

Every zoom goes through :func:`context_box`, the one place where boxes are
validated, enlarged and clamped (DESIGN §2.2):

1. the requested box is clipped to the image; a box that misses the image
   or has no area is rejected with a :class:`CropError` (an error turn);
2. a side shorter than the minimum (``min_side_view`` pixels *of the
   model's resized global view*, i.e. ``min_side_view / view_scale``
   original pixels) is grown to the minimum about the centre;
3. a box more elongated than ``max_aspect`` has its short side grown;
4. the box is enlarged by ``context_factor`` (≈1.5) about its centre, so the
   crop shows the region's surroundings;
5. the result is shifted back inside the image (keeping its size where the
   image allows; otherwise clipped) and snapped outward to whole pixels.

The returned box has integer coordinates, so ``image[y1:y2, x1:x2]`` is
exactly the crop and replaying a trajectory is bit-exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qprobe.errors import QProbeError
from qprobe.types import Box


class CropError(QProbeError):
    """A requested box cannot be turned into a crop (outside the image, empty)."""


@dataclass(frozen=True)
class CropConfig:
    """How requested boxes become crops."""

    context_factor: float = field(
        default=1.5, metadata={"help": "Enlarge each requested box by this factor about its centre."}
    )
    min_side_view: float = field(
        default=28.0,
        metadata={"help": "Minimum crop side, in pixels of the model's resized global view."},
    )
    max_aspect: float = field(
        default=4.0, metadata={"help": "Largest allowed long/short side ratio of a crop."}
    )

    def __post_init__(self) -> None:
        if self.context_factor < 1.0:
            raise ValueError(f"context_factor must be >= 1, got {self.context_factor}")
        if self.min_side_view <= 0:
            raise ValueError(f"min_side_view must be > 0, got {self.min_side_view}")
        if self.max_aspect < 1.0:
            raise ValueError(f"max_aspect must be >= 1, got {self.max_aspect}")


def _grow_to(lo: float, hi: float, size: float) -> tuple[float, float]:
    """Grow the interval [lo, hi] about its centre to at least ``size``."""
    if hi - lo >= size:
        return lo, hi
    c = (lo + hi) / 2.0
    return c - size / 2.0, c + size / 2.0


def _fit(lo: float, hi: float, limit: float) -> tuple[float, float]:
    """Shift [lo, hi] inside [0, limit] keeping its length; clip if longer."""
    length = hi - lo
    if length >= limit:
        return 0.0, float(limit)
    if lo < 0:
        lo, hi = 0.0, length
    if hi > limit:
        lo, hi = limit - length, float(limit)
    return lo, hi


def context_box(
    box: Box,
    image_size: tuple[int, int],
    config: CropConfig = CropConfig(),
    view_scale: float = 1.0,
) -> Box:
    """The effective integer crop box for a requested ``box``.

    ``image_size`` is ``(width, height)`` of the original; ``view_scale`` is
    view pixels per original pixel of the global view (≤ 1), which turns the
    minimum side given in view pixels into original pixels.
    """
    w, h = image_size
    if w <= 0 or h <= 0:
        raise CropError(f"image has no pixels ({w}x{h})")
    clipped = box.clip(w, h)
    if clipped.width <= 0 or clipped.height <= 0:
        raise CropError(
            f"box {box.to_list(1)} does not overlap the {w}x{h} image (coordinates are original pixels)"
        )
    x1, y1, x2, y2 = clipped.x1, clipped.y1, clipped.x2, clipped.y2
    min_side = min(config.min_side_view / max(view_scale, 1e-9), float(w), float(h))
    x1, x2 = _grow_to(x1, x2, min_side)
    y1, y2 = _grow_to(y1, y2, min_side)
    bw, bh = x2 - x1, y2 - y1
    if bw > config.max_aspect * bh:
        y1, y2 = _grow_to(y1, y2, bw / config.max_aspect)
    elif bh > config.max_aspect * bw:
        x1, x2 = _grow_to(x1, x2, bh / config.max_aspect)
    f = config.context_factor
    x1, x2 = _grow_to(x1, x2, (x2 - x1) * f)
    y1, y2 = _grow_to(y1, y2, (y2 - y1) * f)
    x1, x2 = _fit(x1, x2, w)
    y1, y2 = _fit(y1, y2, h)
    ix1, iy1 = max(0, math.floor(x1 + 1e-6)), max(0, math.floor(y1 + 1e-6))
    ix2, iy2 = min(w, math.ceil(x2 - 1e-6)), min(h, math.ceil(y2 - 1e-6))
    return Box(float(ix1), float(iy1), float(ix2), float(iy2))


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of an integer ``box`` of ``image`` (a view, not a copy)."""
    x1, y1, x2, y2 = (int(v) for v in box.to_list(None))
    return image[y1:y2, x1:x2]
