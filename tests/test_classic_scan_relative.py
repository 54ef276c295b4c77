"""The image-relative scan (stop 29): where the scan fires on most of a photo, only what stands out counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qprobe.backends.classic.scan import image_relative, probabilities, probability_map, scan_logits
from qprobe.types import Box

THRESHOLD = 0.8
T_LOGIT = float(np.log(THRESHOLD / (1 - THRESHOLD)))


def test_a_scan_that_fires_locally_is_left_exactly_as_it_is() -> None:
    rng = np.random.default_rng(0)
    logit = rng.normal(-3.0, 1.0, (40, 60))
    logit[5:10, 5:12] = 6.0  # 35 of 2,400 blocks fire
    out, shift = image_relative(logit, THRESHOLD, 0.1)
    assert shift == 0.0 and out is logit
    for off in (None, 1.0):
        same, s = image_relative(logit + 10.0, THRESHOLD, off)  # fires everywhere, but the rule is off
        assert s == 0.0 and np.array_equal(same, logit + 10.0)


def test_a_scan_that_fires_everywhere_keeps_only_its_standouts() -> None:
    rng = np.random.default_rng(1)
    logit = rng.normal(8.0, 1.0, (40, 60))  # the photo's own grain: every block "fires"
    logit[30:34, 40:45] = 25.0  # a local defect on top of it
    assert np.mean(logit > T_LOGIT) == 1.0
    out, shift = image_relative(logit, THRESHOLD, 0.1)
    assert shift == pytest.approx(np.quantile(logit, 0.9) - T_LOGIT)
    assert np.allclose(out, logit - shift)  # one shift for the whole image: the order of the blocks is kept
    assert np.mean(out > T_LOGIT) <= 0.1
    assert (out[30:34, 40:45] > T_LOGIT).all()  # the defect still stands out
    assert np.mean(out > T_LOGIT + 5.0) == pytest.approx(20 / 2400)  # and it alone by a margin
    with pytest.raises(ValueError, match="max_share"):
        image_relative(logit, THRESHOLD, 0.0)


def test_probability_map_is_the_sigmoid_of_the_logits() -> None:
    rng = np.random.default_rng(2)
    ctx = rng.normal(size=(6, 7, 5)).astype(np.float32)
    hidden = rng.normal(size=(5, 4)).astype(np.float32)
    weights = rng.normal(size=5).astype(np.float32)
    logit = scan_logits(ctx, weights, hidden)
    assert logit.shape == (6, 7)
    np.testing.assert_array_equal(probability_map(ctx, weights, hidden), probabilities(logit))
    assert probabilities(np.array([100.0, -100.0])).tolist() == pytest.approx([1.0, 0.0], abs=1e-12)


def _policy(monkeypatch: pytest.MonkeyPatch, logit: np.ndarray, max_scan_share: float | None):  # noqa: ANN202
    """A policy whose scan logits are ``logit`` (its real block features, planner and agreement)."""
    from qprobe.backends.classic import policy as policy_module
    from qprobe.backends.classic import scan as scan_module
    from qprobe.backends.classic.detector import DetectorSettings

    monkeypatch.setattr(scan_module, "scan_logits", lambda ctx, w, h: logit)
    model = SimpleNamespace(
        scan_cell=32,
        scan_radius=3,
        scan_weights=np.zeros(3, np.float32),
        scan_hidden=None,
        scan_threshold=THRESHOLD,
        agree_threshold=THRESHOLD,
        zoom_side=320,
        max_zoom_side=320,
        detector=DetectorSettings(),
        fusion=[1.0],
    )
    rows, cols = logit.shape
    image = np.random.default_rng(3).integers(0, 256, (rows * 32, cols * 32, 3), dtype=np.uint8)
    pol = policy_module.ClassicPolicy(model, image, 8, max_scan_share=max_scan_share)
    pol._planned()
    return pol


def test_the_policy_zooms_on_and_confirms_only_what_stands_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grain everywhere (logit 8, a little higher to the right), one damaged patch (25) at x, y 640-800."""
    logit = np.tile(8.0 + 0.01 * np.arange(60), (40, 1))  # the grain's top tenth: the six right-most columns
    logit[20:25, 20:25] = 25.0
    patch, wall = Box(650, 650, 790, 790), Box(100, 100, 240, 240)

    relative = _policy(monkeypatch, logit, 0.1)
    assert relative.scan_share == 1.0 and relative.scan_shift > 0
    assert relative.agrees(patch) and not relative.agrees(wall)
    first = relative.plan[0].box
    assert first.x1 <= 640 and first.x2 >= 800 and first.y1 <= 640 and first.y2 >= 800  # the first zoom
    extra = relative.answer().extra["classic"]
    assert extra["scan_share"] == 1.0 and extra["scan_shift"] == round(relative.scan_shift, 4)

    as_trained = _policy(monkeypatch, logit, 1.0)
    assert as_trained.scan_shift == 0.0
    assert as_trained.agrees(patch) and as_trained.agrees(wall)  # every box "agrees": the check means nothing


def test_the_backend_setting() -> None:
    from qprobe.backends.classic.backend import ClassicBackend, ClassicConfig
    from qprobe.backends.classic.policy import MAX_SCAN_SHARE

    assert ClassicConfig().max_scan_share == MAX_SCAN_SHARE
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="max_scan_share"):
            ClassicBackend(max_scan_share=bad)
    pol = ClassicBackend(max_scan_share=1.0).policy_for(SimpleNamespace(), None)
    assert pol.max_scan_share == 1.0
