"""Is a region coarsely quantized? The physical check behind a ``banding`` detection.

Banding (posterization, false contours) is coarse quantization: inside the
damaged region every channel takes only values on a lattice of step ≥ 3
grey levels (8 or more levels lost per step at the benchmark's mildest
severity). Natural content at 8 bits — a smooth sky gradient included —
always has some pair of neighbouring values (noise, anti-aliased edges,
gradients stepping one level at a time). The defect head alone confuses an
8-bit gradient with mild banding (it has no pixel-level view of the
values), so a ``banding`` component is kept only where the native-resolution
pixels show the lattice.

Per cell of the head's grid, each channel with at least two distinct values
is *informative*; it is *lattice-like* when its sorted distinct values are
all at least ``MIN_STEP`` apart. A cell's score is the share of its
informative channels that are lattice-like (NaN when no channel is
informative: a flat cell says nothing). Known limit: banding
that was JPEG-compressed afterwards loses its lattice and is not confirmed.
"""

from __future__ import annotations

import numpy as np

MIN_STEP = 3
"""Smallest gap between a channel's distinct values that counts as coarse quantization."""

MIN_SHARE = 0.3
"""A banding component is kept when its informative cells are lattice-like on average at least this much
(clean content scores ≈ 0, a banded core ≈ 1; the margin absorbs a component's feathered border)."""


def _cell_index(n: int, cells: int) -> np.ndarray:
    """The cell of each of ``n`` pixels along one axis, for a grid of ``cells`` (as the head's grid lies)."""
    return np.minimum((np.arange(n) * cells) // max(n, 1), cells - 1)


def lattice_cells(
    rgb: np.ndarray, grid: tuple[int, int], rows: slice | None = None, cols: slice | None = None
) -> np.ndarray:
    """Lattice scores (see the module docstring) of the cells ``rows`` x ``cols`` of a ``grid`` laid over ``rgb``.

    ``rgb``: uint8 H x W x 3, the native-resolution crop; ``grid``: (rows,
    cols) of the head's output on it. Only the pixels of the requested cells
    are read, so checking one component costs little.
    """
    gh, gw = int(grid[0]), int(grid[1])
    r0, r1, _ = (rows or slice(0, gh)).indices(gh)
    c0, c1, _ = (cols or slice(0, gw)).indices(gw)
    h, w = rgb.shape[:2]
    ri, ci = _cell_index(h, gh), _cell_index(w, gw)
    y0, y1 = int(np.searchsorted(ri, r0)), int(np.searchsorted(ri, r1))
    x0, x1 = int(np.searchsorted(ci, c0)), int(np.searchsorted(ci, c1))
    nr, nc = r1 - r0, c1 - c0
    n = nr * nc
    if n <= 0:
        return np.zeros((max(nr, 0), max(nc, 0)), np.float32)
    cell = ((ri[y0:y1] - r0)[:, None] * nc + (ci[x0:x1] - c0)[None, :]).ravel()
    levels = np.arange(256)
    informative = np.zeros(n, np.int32)
    lattice = np.zeros(n, np.int32)
    for c in range(3):
        values = np.ascontiguousarray(rgb[y0:y1, x0:x1, c]).ravel().astype(np.int64)
        occupied = np.bincount(cell * 256 + values, minlength=n * 256).reshape(n, 256) > 0
        last = np.maximum.accumulate(np.where(occupied, levels, -1), axis=1)  # highest occupied level <= l
        before = np.concatenate([np.full((n, 1), -1), last[:, :-1]], axis=1)  # ... < l
        gaps = np.where(occupied & (before >= 0), levels - before, 256)
        smallest = gaps.min(axis=1)
        has_two = smallest < 256
        informative += has_two
        lattice += has_two & (smallest >= MIN_STEP)
    score = np.where(informative >= 1, lattice / np.maximum(informative, 1), np.nan)
    return score.reshape(nr, nc).astype(np.float32)


def confirms_banding(scores: np.ndarray) -> bool:
    """Whether the cells of one banding component (their lattice scores) show coarse quantization."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return bool(s.size) and float(s.mean()) >= MIN_SHARE


__all__ = ["MIN_SHARE", "MIN_STEP", "confirms_banding", "lattice_cells"]
