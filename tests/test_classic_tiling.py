"""Native-resolution tiling of large crops for the defect head (backends/classic/tiling.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qprobe.backends.classic.tiling import CELL, tile_axis, tiled_maps, tiles_needed  # noqa: E402
from qprobe.types import Box  # noqa: E402


@pytest.mark.parametrize("length", [40, 511, 512, 513, 530, 812, 1300, 2000, 4097])
def test_tiles_cover_the_axis_on_the_cell_grid_with_context(length: int) -> None:
    tile, margin = 512, 64
    ax = tile_axis(length, tile, margin)
    t = ax.tile
    assert t == (length if length < tile + CELL else tile)
    assert all(o % CELL == 0 for o in ax.origins)
    assert ax.origins[0] == 0 and list(ax.origins) == sorted(set(ax.origins))
    assert ax.ends[-1] == length and t <= ax.ends[-1] - ax.origins[-1] < t + CELL  # the last tile runs to the end
    assert all(e - o == t for o, e in zip(ax.origins[:-1], ax.ends[:-1]))
    steps = np.diff(ax.origins)
    assert (steps <= t - 2 * margin + CELL).all()  # neighbours overlap by about 2 * margin or more
    cells = math.ceil(length / CELL)
    assert len(ax.owner) == len(ax.index) == cells
    # each output cell is the very cell of its tile (same pixels)
    pos = np.asarray(ax.origins)[ax.owner] + ax.index * CELL
    full = np.arange(cells) * CELL
    assert (pos == full).all()
    # and it keeps at least `margin` pixels of its tile on each side, unless the crop itself ends there
    start = np.asarray(ax.origins)[ax.owner]
    lo = full - start
    hi = np.asarray(ax.ends)[ax.owner] - (full + CELL)
    inner = (full >= margin) & (full + CELL <= length - margin)
    assert (lo[inner] >= margin - CELL // 2).all() and (hi[inner] >= margin - CELL // 2).all()


def test_stitched_maps_equal_one_map_of_the_whole_crop() -> None:
    """A head that reads each cell's own pixels gives, tile by tile, the map of the whole crop."""
    h, w = 1000, 1337
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(yy // CELL) % 251, (xx // CELL) % 251, (yy // CELL + xx // CELL) % 7], axis=2).astype(np.uint8)
    calls = []

    def run(tile: np.ndarray) -> np.ndarray:  # per cell: its top-left pixel (a cell-local head)
        calls.append(tile.shape)
        return np.moveaxis(tile[::CELL, ::CELL].astype(np.float32), 2, 0)

    out = tiled_maps(rgb, run, 512, 64)
    assert out.shape == (3, math.ceil(h / CELL), math.ceil(w / CELL))
    np.testing.assert_array_equal(out, np.moveaxis(rgb[::CELL, ::CELL].astype(np.float32), 2, 0))
    assert len(calls) == tiles_needed(h, w, 512, 64)
    assert all(512 <= s[0] < 512 + CELL and 512 <= s[1] < 512 + CELL for s in calls)


def test_classic_model_tiles_large_crops_at_native_resolution(tmp_path: Path) -> None:
    from _helpers_classic import make_random_weights
    from conftest import make_texture

    from qprobe.backends.classic.runtime import ClassicModel, fit_side

    path = make_random_weights(tmp_path / "w.pt")
    tiled = ClassicModel.load(path, engine="torch")
    resized = ClassicModel.load(path, engine="torch", max_tiles=1)
    rgb = make_texture(700, 900, seed=3)
    small = rgb[:480, :400]
    # a crop of the training size: one pass, the same either way
    np.testing.assert_array_equal(tiled.defect_maps(small), resized.defect_maps(small))
    big = tiled.defect_maps(rgb)
    assert big.shape[1:] == (math.ceil(700 / CELL), math.ceil(900 / CELL))  # native 16-px cells
    assert resized.defect_maps(rgb).shape[1:] == (512 * 700 // 900 // CELL + 1, 512 // CELL)  # downscaled
    # the top-left tile's interior cells are that tile's own pass
    own = tiled.defect_maps(rgb[:512, :512])
    np.testing.assert_allclose(big[:, :20, :20], own[:, :20, :20], rtol=1e-5, atol=1e-5)
    # beyond max_tiles the crop is downscaled just enough
    few = ClassicModel.load(path, engine="torch", max_tiles=2)
    shape = few.defect_maps(rgb).shape[1:]
    assert shape[1] < math.ceil(900 / CELL) and shape[1] > 512 // CELL
    assert fit_side(rgb, 512).shape[1] == 512


def test_a_large_forced_zoom_is_tiled_through_the_whole_episode(tmp_path: Path, monkeypatch) -> None:
    from _helpers_classic import make_random_weights
    from conftest import make_texture

    from qprobe.backends import create_backend
    from qprobe.backends.classic import tiling

    path = make_random_weights(tmp_path / "w.pt")
    small = {"weights": str(path), "view_long_side": 256, "zoom_side": 96, "max_crop_side": 192, "engine": "torch"}
    img = make_texture(450, 700, seed=5)
    probe = Box(100, 60, 500, 360)  # 400 x 300, a 600 x 450 crop with context: beyond the 192-px input
    runs: list[int] = []
    real = tiling.tiled_maps
    monkeypatch.setattr(
        "qprobe.backends.classic.core.tiled_maps", lambda rgb, *a: runs.append(rgb.shape[1]) or real(rgb, *a)
    )
    tiled = create_backend("classic", **small).assess(img, forced_probes=[probe])
    assert tiled.ok and runs == [600]  # the forced crop, at native resolution; the planned zooms fit one pass
    crop = tiled.probes[0]
    assert (crop.width, crop.height) == (600.0, 450.0)
    resized = create_backend("classic", **small, max_tiles=1).assess(img, forced_probes=[probe])
    assert resized.ok and runs == [600] and resized.probes == tiled.probes
