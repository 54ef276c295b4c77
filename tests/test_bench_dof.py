"""Synthetic depth of field: subject unchanged, blur growing with the depth proxy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from qprobe.bench.dof import apply_dof, depth_proxy
from qprobe.types import Box

from _helpers_bench import luma
from conftest import make_texture

SUBJECT = Box(150.0, 110.0, 250.0, 190.0)


@pytest.fixture(scope="module")
def rendered():
    img = make_texture(300, 420, seed=4)
    return img, apply_dof(img, SUBJECT, max_sigma=5.0)


def test_depth_proxy_is_zero_on_subject_and_grows_smoothly():
    d = depth_proxy(300, 420, SUBJECT, falloff=0.35, focus_band=0.02)
    assert d.shape == (300, 420) and d.min() == 0.0 and d.max() == pytest.approx(1.0)
    assert np.all(d[110:190, 150:250] == 0)
    row = d[150, 250:]  # moving right from the subject: non-decreasing
    assert np.all(np.diff(row) >= 0)
    assert np.abs(np.diff(d, axis=1)).max() < 0.02  # no jumps


def test_subject_is_bit_identical(rendered):
    img, res = rendered
    x1, y1, x2, y2 = res.focus_box.to_int()
    assert res.focus_box.contains(SUBJECT)
    assert np.array_equal(res.image[y1:y2, x1:x2], img[y1:y2, x1:x2])
    assert not np.array_equal(res.image, img)


def test_blur_grows_monotonically_with_depth(rendered):
    img, res = rendered
    d = depth_proxy(*img.shape[:2], SUBJECT)
    hf_in = np.abs(ndimage.laplace(luma(img)))
    hf_out = np.abs(ndimage.laplace(luma(res.image)))
    edges = [0.0, 1e-9, 0.15, 0.35, 0.55, 0.75, 1.0 + 1e-6]
    kept = []
    for lo, hi in zip(edges, edges[1:]):
        m = (d >= lo) & (d < hi)
        m[:4], m[-4:], m[:, :4], m[:, -4:] = False, False, False, False
        kept.append(hf_out[m].mean() / hf_in[m].mean())
    assert kept[0] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(kept, kept[1:])), kept
    assert kept[-1] < 0.2


def test_bad_arguments():
    img = make_texture(64, 64)
    with pytest.raises(ValueError):
        apply_dof(img.astype(np.float32), SUBJECT)
    with pytest.raises(ValueError):
        apply_dof(img, Box(0, 0, 10, 10), n_layers=1)
