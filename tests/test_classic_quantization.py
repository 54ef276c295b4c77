"""The banding check: coarse quantization on a lattice, not 8-bit gradients or texture."""

from __future__ import annotations

import numpy as np

from qprobe.backends.classic.detector import DetectorSettings, detect
from qprobe.backends.classic.quantization import confirms_banding, lattice_cells
from qprobe.bench.inject import apply_local
from qprobe.types import Box


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 120 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    return np.clip(base[..., None] + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _gradient(h: int, w: int) -> np.ndarray:
    """A smooth 8-bit sky: one grey level per few pixels, no noise."""
    ramp = np.linspace(60, 200, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    return np.stack([np.rint(ramp), np.rint(ramp * 0.9), np.rint(ramp * 0.7 + 40)], axis=2).astype(np.uint8)


def test_lattice_scores_separate_banding_from_natural_content() -> None:
    tex, grad = _texture(160, 240), _gradient(160, 240)
    for clean in (tex, grad):
        s = lattice_cells(clean, (10, 15))
        assert np.nanmax(s) == 0.0  # neighbouring values everywhere
        for sev in (1, 3, 5):
            banded = apply_local(clean, Box(0, 0, 240, 160), "banding", sev, 0, feather_frac=0.0).image
            assert np.nanmin(lattice_cells(banded, (10, 15))[1:-1, 1:-1]) == 1.0  # inside the 1-px blended border
    assert np.isnan(lattice_cells(np.full((64, 64, 3), 77, np.uint8), (4, 4))).all()  # flat: no evidence


def test_lattice_cells_of_a_slice_match_the_whole_grid() -> None:
    img = apply_local(_texture(150, 230, seed=2), Box(40, 30, 170, 120), "banding", 2, 1).image
    whole = lattice_cells(img, (10, 15))
    part = lattice_cells(img, (10, 15), slice(2, 8), slice(3, 12))
    np.testing.assert_array_equal(part, whole[2:8, 3:12])


def test_confirms_banding_needs_evidence() -> None:
    assert confirms_banding(np.array([1.0, 1.0, np.nan, 0.0]))
    assert not confirms_banding(np.array([0.0, 0.0, 0.1]))
    assert not confirms_banding(np.array([np.nan, np.nan]))  # a flat region shows no quantization


def _banding_probs(h: int, w: int) -> np.ndarray:
    probs = np.zeros((3, h, w), np.float32)
    probs[0] = 1.0
    probs[:, 2:8, 3:12] = np.array([0.01, 0.98, 0.01])[:, None, None]  # a confident "banding" blob
    return probs


def test_detect_drops_banding_without_a_lattice_and_keeps_it_with_one() -> None:
    classes = ["clean", "banding", "gaussian_noise"]
    settings = DetectorSettings(threshold=0.5, min_cells=2)
    grid = (10, 15)
    crop = Box(0, 0, 240, 160)
    sev = np.full(grid, 2.0)
    grad = _gradient(160, 240)
    banded = apply_local(grad, Box(40, 25, 200, 135), "banding", 1, 0, feather_frac=0.0).image
    probs = _banding_probs(*grid)
    assert detect(probs, sev, classes, crop, settings) != []  # no evidence given: unchecked
    assert detect(probs, sev, classes, crop, settings, lattice_cells(grad, grid)) == []
    kept = detect(probs, sev, classes, crop, settings, lambda r, c: lattice_cells(banded, grid, r, c))
    assert [d.type for d in kept] == ["banding"]
    noise = probs[[0, 2, 1]]  # the same blob called noise: the banding check does not apply
    assert [d.type for d in detect(noise, sev, classes, crop, settings, lattice_cells(grad, grid))] == ["gaussian_noise"]
