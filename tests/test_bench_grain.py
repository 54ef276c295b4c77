"""Sensor grain for synthetic depth of field: the estimate, the share a blur removes, putting it back."""

from __future__ import annotations

import numpy as np
import pytest

from qprobe.bench.dof import apply_dof
from qprobe.bench.grain import add_grain, estimate_noise_sigma, removed_share
from qprobe.types import Box


def noisy(base: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(base + rng.normal(0.0, sigma, base.shape)), 0, 255).astype(np.uint8)


def gradient(h: int = 384, w: int = 512) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 60.0 + 0.15 * xx + 0.1 * yy
    return np.stack([g, g + 20.0, g + 40.0], axis=-1)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 5.0])
def test_estimate_recovers_white_noise_on_a_gradient(sigma):
    est = estimate_noise_sigma(noisy(gradient(), sigma))
    assert est.shape == (3,)
    assert np.allclose(est, sigma, rtol=0.15, atol=0.15)  # the operator cancels the linear gradient


def test_estimate_ignores_clipped_blocks_and_finds_no_grain_on_a_clean_gradient():
    base = gradient()
    base[:, :256] = 255.0  # a blown-out half: every block there clips
    est = estimate_noise_sigma(noisy(base, 1.5))
    assert np.allclose(est, 1.5, rtol=0.15)
    clean = np.clip(np.rint(gradient()), 0, 255).astype(np.uint8)
    assert np.all(estimate_noise_sigma(clean) < 0.35)  # rounding of a clean gradient only
    with pytest.raises(ValueError):
        estimate_noise_sigma(np.zeros((64, 64), np.uint8))


def test_removed_share_is_zero_without_blur_and_follows_the_gaussian_kernel():
    s = removed_share(np.array([0.0, 0.5, 1.0, 2.0, 6.0], np.float32))
    assert s[0] == 0.0 and np.all(np.diff(s) > 0) and s[-1] < 1.0
    # a 2-D Gaussian of sigma keeps about 1 / (4 pi sigma^2) of white noise's variance
    assert 1.0 - s[3] == pytest.approx(1.0 / (1.0 + 16.0 * np.pi), rel=1e-5)


def test_add_grain_leaves_unblurred_pixels_and_restores_the_level_elsewhere():
    img = np.full((256, 256, 3), 120, np.uint8)
    blur = np.zeros((256, 256), np.float32)
    blur[:, 128:] = 4.0
    sigma = np.array([2.0, 1.0, 0.0], np.float32)
    out = add_grain(img.copy(), blur, sigma, np.random.default_rng(1), rows=50)
    assert np.array_equal(out[:, :128], img[:, :128])
    right = out[:, 128:].astype(np.float64) - 120.0
    expect = np.sqrt(removed_share(np.float32(4.0)))
    assert right[..., 0].std() == pytest.approx(2.0 * expect, rel=0.08)
    assert right[..., 1].std() == pytest.approx(1.0 * expect, rel=0.1)
    assert np.all(right[..., 2] == 0)
    again = add_grain(img.copy(), blur, sigma, np.random.default_rng(1), rows=50)
    assert np.array_equal(out, again)  # deterministic for a seed, whatever the chunking
    with pytest.raises(ValueError):
        add_grain(img.copy(), blur[:10], np.ones(3, np.float32), np.random.default_rng(1))


def test_apply_dof_with_grain_keeps_the_photo_s_grain_in_the_defocused_background():
    photo = noisy(gradient(), 1.5, seed=3)
    subject = Box(40.0, 40.0, 140.0, 120.0)
    plain = apply_dof(photo, subject, max_sigma=5.0)
    grain = estimate_noise_sigma(photo)
    grainy = apply_dof(photo, subject, max_sigma=5.0, grain=grain, rng=np.random.default_rng(0))
    far = (slice(250, 384), slice(350, 512))  # fully defocused corner
    assert np.all(estimate_noise_sigma(plain.image[far]) < 0.5)  # the blur took the grain away
    assert np.allclose(estimate_noise_sigma(grainy.image[far]), 1.5, rtol=0.2)
    x1, y1, x2, y2 = grainy.focus_box.to_int()
    assert np.array_equal(grainy.image[y1:y2, x1:x2], photo[y1:y2, x1:x2])  # the subject stays bit-identical
    # the blur itself is unchanged: the grainy render differs from the plain one by noise only
    diff = grainy.image[far].astype(np.float64) - plain.image[far]
    assert abs(diff.mean()) < 0.1
    with pytest.raises(ValueError, match="rng"):
        apply_dof(photo, subject, max_sigma=5.0, grain=np.ones(3, np.float32))
