"""A blur-like defect needs detail around it: the surround check of the classic policy."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from qprobe.backends.classic.detector import DetectorSettings
from qprobe.backends.classic.scan import block_features
from qprobe.backends.classic.surround import (
    DETAIL_LOSS_TYPES,
    MIN_SURROUND_DETAIL,
    has_reference,
    ring_slices,
    surround_detail,
)
from qprobe.types import Box, Defect


def _field(sigma: float, shape: tuple[int, int] = (512, 768), seed: int = 0) -> np.ndarray:
    """A grey field of 128 with white noise of ``sigma`` grey levels (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    g = np.clip(np.rint(128 + rng.normal(0, sigma, shape)), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _abs_laplacian(rgb: np.ndarray) -> np.ndarray:
    y = rgb[:, :, 0].astype(np.float64)  # grey: luma is any channel
    lap = np.zeros_like(y)
    lap[1:-1, 1:-1] = np.abs(y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1])
    return lap


def test_surround_detail_is_the_mean_abs_laplacian_of_the_ring() -> None:
    rgb = _field(2.0)
    box = Box(300, 200, 460, 300)
    inner, outer = ring_slices(box, 32, (16, 24))
    assert (inner, outer) == ((slice(6, 10), slice(9, 15)), (slice(4, 12), slice(7, 17)))  # a ring of 2 blocks
    lap = _abs_laplacian(rgb)
    win = lap[4 * 32 : 12 * 32, 7 * 32 : 17 * 32].copy()
    win[2 * 32 : 6 * 32, 2 * 32 : 8 * 32] = np.nan  # the box's blocks are not the ring
    got = surround_detail(block_features(rgb, 32), box)
    assert got == pytest.approx(float(np.nanmean(win)), rel=0.03)  # block means are rounded to 1/2 level


def test_grain_free_smooth_surroundings_fall_below_the_minimum_and_grain_does_not() -> None:
    box = Box(300, 200, 460, 300)
    levels = {s: surround_detail(block_features(_field(s), 32), box) for s in (0.0, 0.4, 1.0)}
    assert levels[0.0] < 0.01 < MIN_SURROUND_DETAIL < levels[0.4] < levels[1.0]
    # texture only outside the box counts: a textured box in a flat field is still unreferenced
    rgb = _field(0.0)
    rgb[200:300, 300:460] = _field(8.0)[200:300, 300:460]
    assert surround_detail(block_features(rgb, 32), box) < 0.5


def test_only_detail_loss_types_are_judged() -> None:
    scan = block_features(_field(0.0), 32)
    box = Box(300, 200, 460, 300)
    assert DETAIL_LOSS_TYPES == {"gaussian_blur", "motion_blur", "smear", "haze"}
    for kind in ("gaussian_blur", "motion_blur", "smear", "haze"):
        assert not has_reference(scan, kind, box)
        assert has_reference(scan, kind, box, minimum=0.0)  # 0: the check is off
    for kind in ("gaussian_noise", "iso_noise", "jpeg", "pixelate", "ringing", "banding"):
        assert has_reference(scan, kind, box)
    assert has_reference(None, "smear", box)  # no scan (no scan model): nothing to judge with
    whole = Box(0, 0, 768, 512)
    assert surround_detail(scan, whole) == math.inf and has_reference(scan, "smear", whole)


def test_the_policy_drops_an_unreferenced_blur_and_keeps_the_rest() -> None:
    from qprobe.backends.classic.policy import ClassicPolicy

    rgb = _field(0.0)
    rgb[:, 520:] = _field(3.0)[:, 520:]  # grain on the right third only
    scan = block_features(rgb, 32)
    flat_box, grain_box = Box(150, 200, 310, 300), Box(600, 200, 700, 300)
    found = [
        Defect(flat_box, "smear", 3, 0.999),
        Defect(Box(150, 20, 310, 120), "gaussian_noise", 3, 0.999),
        Defect(grain_box, "gaussian_blur", 3, 0.999),
    ]
    model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.5, detector=DetectorSettings(), fusion=[1.0])
    for minimum, expect in ((MIN_SURROUND_DETAIL, ["gaussian_noise", "gaussian_blur"]), (0.0, ["smear", "gaussian_noise", "gaussian_blur"])):
        pol = ClassicPolicy(model, None, 8, min_surround_detail=minimum)
        pol.scan, pol.prob = scan, np.full(scan.shape, 0.9, np.float32)
        pol.image_size, pol.view_scale = (768, 512), 0.5
        pol.add_crop(found)
        ans = pol.answer()
        assert sorted(d.type for d in ans.defects) == sorted(expect)
        assert ans.extra["classic"]["no_surround_detail"] == 3 - len(expect)


def test_backend_setting_defaults_to_the_module_minimum_and_refuses_negatives() -> None:
    from qprobe.backends.classic.backend import ClassicConfig, ClassicBackend

    assert ClassicConfig().min_surround_detail == MIN_SURROUND_DETAIL
    with pytest.raises(ValueError, match="min_surround_detail"):
        ClassicBackend(min_surround_detail=-1.0)
