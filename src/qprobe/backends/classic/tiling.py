"""Native-resolution tiling of large crops for the dense defect head.

The defect head is trained on zoom-shaped crops of at most ``max_crop_side``
(512) pixels seen at native resolution, and it judges each cell partly
against the crop's own mean. A larger crop — a zoom on a 65 MP image, where
the environment's minimum zoom side (28 pixels of the 512-px global view)
is 540 original pixels and the context enlargement makes it 810, or a large
forced probe (the crop-bias analysis zooms into a quarter of the short side)
— used to be *downscaled* to 512 px first: by up to 4.7x on a 65 MP image,
where noise averages away, blur looks sharp and fine texture turns into
aliasing the head has never seen.

Here such a crop is cut into overlapping tiles of the training size at
native resolution; each tile goes through the head as an ordinary crop, and
the tiles' cell maps are stitched into one map of the whole crop on its
16-px grid, each output cell taken from the tile in which it lies farthest
from a tile border (so every cell keeps at least ``margin`` pixels of real
context, where the image has them). Only crops with more than ``max_tiles``
tiles are still downscaled, by the least factor that brings them within it.

numpy only; the head itself is a callable passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CELL = 16
"""Pixels per cell of the defect head's output (the tap's stride 8, then one stride-2 convolution)."""


@dataclass(frozen=True)
class TileAxis:
    """How one axis of length ``length`` is tiled: tile origins, and per output cell its tile and cell there."""

    length: int
    tile: int
    origins: tuple[int, ...]
    ends: tuple[int, ...]
    owner: np.ndarray  # per output cell: the index of the tile it is taken from
    index: np.ndarray  # per output cell: its cell index in that tile's map


def tile_axis(length: int, tile: int, margin: int) -> TileAxis:
    """Tile ``[0, length)`` with tiles of ``tile`` pixels overlapping by at least ``2 * margin``.

    Origins are spread evenly (steps of at most ``tile - 2 * margin``), each
    a multiple of ``CELL``, so each tile's cells are cells of the output
    grid exactly; the last tile starts at the last such origin before
    ``length - tile`` and runs to ``length`` (up to ``CELL - 1`` pixels
    longer than the others). A length no longer than ``tile`` + ``CELL`` - 1 is one tile.
    """
    if length <= 0 or tile <= 0:
        raise ValueError(f"length and tile must be positive, got {length} and {tile}")
    tile = min(tile, length)
    if length - tile < CELL:  # one tile, at most CELL - 1 pixels longer than asked
        tile = length
    step = max(CELL, (tile - 2 * margin) // CELL * CELL)  # the largest allowed step between origins
    last = (length - tile) // CELL * CELL
    n = 1 + math.ceil(last / step)
    # spread evenly between 0 and last (on the cell grid): equal overlaps, each at least 2 * margin
    origins = tuple(round(k * last / (n - 1) / CELL) * CELL if n > 1 else 0 for k in range(n))
    ends = tuple(o + tile for o in origins[:-1]) + (length,)
    cells = math.ceil(length / CELL)
    centre = np.minimum(np.arange(cells) * CELL + CELL / 2.0, length - 0.5)
    starts = np.asarray(origins, dtype=np.float64)
    # distance of each cell centre to the nearest border of each tile; a cell goes to the tile where it is largest
    depth = np.minimum(centre[:, None] - starts[None, :], np.asarray(ends, dtype=np.float64)[None, :] - centre[:, None])
    owner = np.argmax(depth, axis=1)
    index = ((centre - starts[owner]) // CELL).astype(np.int64)
    return TileAxis(length, tile, origins, ends, owner, index)


def tiles_needed(height: int, width: int, tile: int, margin: int) -> int:
    """How many tiles :func:`tiled_maps` would run on a ``height x width`` crop."""
    return len(tile_axis(height, tile, margin).origins) * len(tile_axis(width, tile, margin).origins)


def tiled_maps(
    rgb: np.ndarray, run: Callable[[np.ndarray], np.ndarray], tile: int, margin: int
) -> np.ndarray:
    """The head's cell maps of a whole crop, computed tile by tile at the crop's resolution.

    ``run``: one H x W x 3 uint8 tile → its C x h x w map (h = ceil(H / 16));
    returns C x ceil(height / 16) x ceil(width / 16).
    """
    h, w = rgb.shape[:2]
    ay, ax = tile_axis(h, tile, margin), tile_axis(w, tile, margin)
    out: np.ndarray | None = None
    for ky, y0 in enumerate(ay.origins):
        rows = np.nonzero(ay.owner == ky)[0]
        if not rows.size:
            continue
        for kx, x0 in enumerate(ax.origins):
            cols = np.nonzero(ax.owner == kx)[0]
            if not cols.size:
                continue
            m = run(rgb[y0 : ay.ends[ky], x0 : ax.ends[kx]])
            if out is None:
                out = np.empty((m.shape[0], len(ay.owner), len(ax.owner)), dtype=m.dtype)
            iy = np.minimum(ay.index[rows], m.shape[1] - 1)
            ix = np.minimum(ax.index[cols], m.shape[2] - 1)
            out[:, rows[:, None], cols[None, :]] = m[:, iy[:, None], ix[None, :]]
    assert out is not None
    return out


__all__ = ["CELL", "TileAxis", "tile_axis", "tiled_maps", "tiles_needed"]
