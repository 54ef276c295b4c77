"""Is there detail around a found blur-like defect to tell it from smooth content?

A blur, motion blur, smear or haze region is damage because it has *less*
fine detail than the photo has there; the head judges that from a crop, the
scan from block statistics against their neighbourhood. Where the
surroundings themselves hold no fine detail at all, neither has a reference:
a defocused background rendered without grain, a clipped shadow, a clean
gradient all look like a region whose detail was removed, and a detail loss
there would not be visible anyway.

:func:`surround_detail` measures that reference from the native-resolution
scan (no pixel work): the mean absolute Laplacian of luma, in grey levels,
over the scan blocks of a ring around the box. Texture, and the grain of a
camera photo (white noise of σ = 0.4 grey levels already gives 1.4, σ = 1
gives 3.7), lie above :data:`MIN_SURROUND_DETAIL`; only grain-free,
detail-free surroundings fall below it. The classic policy drops a
detail-loss defect there (``ClassicConfig.min_surround_detail``; 0 keeps every one).

Measured on the stop-25 benchmark builds (docs/classic-experiments.md): the
four blur-type false boxes on depth-of-field images (heavily defocused,
noise-free backgrounds) had 0.58–0.93 grey levels around them, every found
blur-type defect 1.08 or more.
"""

from __future__ import annotations

import math

import numpy as np

from qprobe.backends.classic.scan import EPS, FEATURE_NAMES, ScanMap
from qprobe.types import Box

DETAIL_LOSS_TYPES: frozenset[str] = frozenset({"gaussian_blur", "motion_blur", "smear", "haze"})
"""Defect types that are a loss of detail or contrast: judged against their surroundings."""

MIN_SURROUND_DETAIL = 1.0
"""Grey levels of mean |Laplacian| around a detail-loss defect below which it has no reference."""

MIN_RING_CELLS = 2
"""The ring is at least this many scan blocks wide (and a quarter of the box's blocks, width plus height)."""

_HF = FEATURE_NAMES.index("log_hf")


def ring_slices(box: Box, cell: int, shape: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The scan blocks of ``box`` (original pixels) and of the window around it (box plus ring), clipped."""
    rows, cols = shape
    x1, y1 = min(cols - 1, max(0, int(box.x1 // cell))), min(rows - 1, max(0, int(box.y1 // cell)))
    x2 = min(cols, max(x1 + 1, math.ceil(box.x2 / cell)))
    y2 = min(rows, max(y1 + 1, math.ceil(box.y2 / cell)))
    width = max(MIN_RING_CELLS, ((x2 - x1) + (y2 - y1)) // 4)
    inner = (slice(y1, y2), slice(x1, x2))
    outer = (slice(max(0, y1 - width), min(rows, y2 + width)), slice(max(0, x1 - width), min(cols, x2 + width)))
    return inner, outer


def surround_detail(scan: ScanMap, box: Box) -> float:
    """Mean |Laplacian| of luma (grey levels) over the scan blocks around ``box``, not inside it.

    ``inf`` when the box leaves no block around it (it covers the whole image):
    no evidence against the defect.
    """
    inner, outer = ring_slices(box, scan.cell, scan.shape)
    # block means of |Laplacian| in the window only (box plus ring), not the whole map
    window = np.exp(scan.features[outer + (_HF,)].astype(np.float64)) - EPS
    ys, xs = (slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))
    n = window.size - window[ys, xs].size
    if n <= 0:
        return math.inf
    return float((window.sum() - window[ys, xs].sum()) / n)


def has_reference(scan: ScanMap | None, defect_type: str, box: Box, minimum: float = MIN_SURROUND_DETAIL) -> bool:
    """False only for a detail-loss defect whose surroundings hold less than ``minimum`` detail."""
    if scan is None or minimum <= 0 or defect_type not in DETAIL_LOSS_TYPES:
        return True
    return surround_detail(scan, box) >= minimum


__all__ = ["DETAIL_LOSS_TYPES", "MIN_SURROUND_DETAIL", "has_reference", "ring_slices", "surround_detail"]
