"""Wavelet texture energy and texture-rich region selection."""

from __future__ import annotations

import numpy as np
import pytest

from qprobe.bench.regions import select_regions, texture_map
from qprobe.bench.wavelet import decompose, texture_energy

from conftest import make_texture


def _half_textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Left half flat grey gradient, right half textured."""
    img = make_texture(h, w, seed=seed)
    flat = np.linspace(90, 110, w // 2, dtype=np.float32)[None, :, None]
    img[:, : w // 2] = np.broadcast_to(flat, (h, w // 2, 3)).astype(np.uint8)
    return img


def test_texture_energy_shape_and_localisation():
    img = _half_textured(100, 130).mean(axis=2).astype(np.float32)
    e = texture_energy(img)
    assert e.shape == (25, 33) and e.dtype == np.float32
    assert e[:, 20:].mean() > 5 * e[:, :14].mean()
    with pytest.raises(ValueError):
        texture_energy(np.zeros((4, 4, 3), np.float32))


def test_decompose_splits_structure_and_texture():
    g = make_texture(97, 130).mean(axis=2).astype(np.float32)
    structure, texture = decompose(g)
    assert structure.shape == g.shape
    assert np.allclose(structure + texture, g, atol=1e-3)
    # structure is smooth: far less high-frequency energy than the input
    from scipy import ndimage

    def hf(a):
        return float(np.mean(ndimage.laplace(a[4:-4, 4:-4]) ** 2))

    assert hf(structure) < 0.2 * hf(g)
    assert hf(texture) > 0.5 * hf(g)


@pytest.mark.parametrize("shape", [(96, 128), (480, 640), (300, 1400), (1400, 300)])
@pytest.mark.parametrize("seed", [0, 1])
def test_regions_inside_sized_disjoint_and_on_texture(shape, seed):
    h, w = shape
    img = _half_textured(h, w, seed)
    tex = texture_map(img)
    regions = select_regions(tex, 3, np.random.default_rng(seed))
    assert 1 <= len(regions) <= 3
    area = h * w
    for i, r in enumerate(regions):
        b = r.box
        assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
        assert b.to_int() == (b.x1, b.y1, b.x2, b.y2)  # integer pixels
        assert 0.002 * area <= b.area <= 0.05 * area
        assert b.center[0] > w / 2 - b.width / 2  # on the textured half
        for other in regions[i + 1 :]:
            assert b.intersection(other.box) == 0


def test_region_selection_is_seeded():
    tex = texture_map(make_texture(240, 320, seed=2))
    a = select_regions(tex, 3, np.random.default_rng(7))
    b = select_regions(tex, 3, np.random.default_rng(7))
    c = select_regions(tex, 3, np.random.default_rng(8))
    assert a == b and a != c


def test_flat_image_still_gets_a_region():
    tex = texture_map(np.full((64, 64, 3), 128, np.uint8))
    regions = select_regions(tex, 1, np.random.default_rng(0))
    assert len(regions) == 1
