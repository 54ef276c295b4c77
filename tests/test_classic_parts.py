"""Classic backend parts: MobileNetV2 layout, scan features, detection post-processing, fusion."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import numpy as np
import pytest

from conftest import make_texture
from qprobe.backends.classic.detector import DetectorSettings, detect, join_fragments, merge_defects
from qprobe.backends.classic.fusion import fit_fusion, fuse, keep_factor
from qprobe.backends.classic.proposals import propose, propose_windows
from qprobe.backends.classic.scan import FEATURE_NAMES, block_features, context_features
from qprobe.types import Box, Defect


def test_mobilenet_matches_torchvision_names() -> None:
    torch = pytest.importorskip("torch")
    from qprobe.backends.classic.mobilenet import MobileNetV2

    sd = MobileNetV2().state_dict()
    assert len(sd) == 314
    for key, shape in {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.1.running_var": (1280,),
        "classifier.1.weight": (1000, 1280),
    }.items():
        assert tuple(sd[key].shape) == shape
    out = MobileNetV2().eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 1000)


def test_scan_features_shape_and_noise_patch() -> None:
    img = make_texture(640, 960, seed=3)
    noisy = img.copy()
    rng = np.random.default_rng(0)
    patch = noisy[256:384, 384:544].astype(np.float32) + rng.normal(0, 25, (128, 160, 3))
    noisy[256:384, 384:544] = np.clip(patch, 0, 255).astype(np.uint8)
    a, b = block_features(img), block_features(noisy)
    assert a.features.shape == (20, 30, len(FEATURE_NAMES)) and a.cell == 32
    hf = FEATURE_NAMES.index("log_hf")
    diff = b.features[..., hf] - a.features[..., hf]
    assert diff[8:12, 12:17].min() > 0.3  # inside the patch
    assert np.abs(diff[:6]).max() < 1e-6  # far away: unchanged
    ctx = context_features(b)
    assert ctx.shape == (20, 30, 3 * len(FEATURE_NAMES) + 1) and np.isfinite(ctx).all()


def test_scan_strips_do_not_change_features(monkeypatch) -> None:
    """Threads scan horizontal strips: any number of strips gives the single-pass features exactly."""
    from qprobe.backends.classic import scan

    img = make_texture(1100, 530, seed=6)  # height not a multiple of the cell: the last strip keeps the border
    img[300:340, 100:200] = 255  # a flat patch across a strip boundary
    for impl in ("pil", "auto"):
        one = block_features(img, workers=1, impl=impl).features
        for workers in (2, 3):
            np.testing.assert_array_equal(block_features(img, workers=workers, impl=impl).features, one)
        with monkeypatch.context() as m:
            m.setattr(scan, "STRIP_PIXELS", 530 * 300)  # more strips than workers (bounded memory)
            for workers in (1, 2):
                np.testing.assert_array_equal(block_features(img, workers=workers, impl=impl).features, one)


def _scan_test_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    imgs = {f"texture{h}x{w}": make_texture(h, w, seed=h) for h, w in [(1100, 530), (531, 1101), (129, 257), (250, 250)]}
    imgs["noise"] = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    imgs["saturated"] = (rng.integers(0, 2, (200, 330, 3)) * 255).astype(np.uint8)  # Laplacian beyond +-128
    imgs["flat"] = np.full((160, 200, 3), 128, np.uint8)
    imgs["tiny"] = make_texture(5, 7, seed=1)
    return imgs


@pytest.mark.parametrize("cell", [32, 24])
def test_opencv_scan_equals_pillow_reference(cell: int) -> None:
    """The OpenCV scan reproduces every Pillow operation: the features are identical."""
    pytest.importorskip("cv2")
    for name, img in _scan_test_images().items():
        ref = block_features(img, cell, workers=2, impl="pil").features
        fast = block_features(img, cell, workers=2, impl="cv").features
        assert ref.shape == fast.shape, name
        np.testing.assert_array_equal(fast, ref, err_msg=name)
    # without the half-resolution copy (short side < 4 cells) the block sums of squares exceed float32's
    # exact range: the reference's float32 sum rounds, the OpenCV path sums exactly
    img = make_texture(127, 300, seed=4)
    ref, fast = block_features(img, 32, impl="pil").features, block_features(img, 32, impl="cv").features
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-3)


def test_fast_blockiness_equals_the_reference() -> None:
    pytest.importorskip("cv2")
    from qprobe.backends.classic import scan_cv
    from qprobe.backends.classic.scan import blockiness

    rng = np.random.default_rng(3)
    for h, w in [(300, 1001), (97, 64), (64, 9), (33, 300), (40, 1), (256, 257)]:
        y = rng.integers(0, 256, (h, w), dtype=np.uint8)
        y[:, ::8] = 255  # strong steps on the grid
        for cell in (8, 24, 32, 40):
            rows, cols = max(1, h // cell), max(1, w // cell)
            np.testing.assert_array_equal(
                scan_cv.blockiness(y, cell, rows, cols), blockiness(y, cell, rows, cols), err_msg=f"{h}x{w}, {cell}"
            )


def test_scan_impl_is_checked(monkeypatch) -> None:
    from qprobe.backends.classic import scan_cv

    img = make_texture(200, 260, seed=1)
    with pytest.raises(ValueError, match="scan implementation"):
        block_features(img, impl="numba")
    ref = block_features(img, impl="pil").features
    monkeypatch.setattr(scan_cv, "_CV2", False)  # as if OpenCV were not installed
    np.testing.assert_array_equal(block_features(img).features, ref)  # auto: the Pillow reference
    with pytest.raises(RuntimeError, match="OpenCV"):
        block_features(img, impl="cv")


def test_context_median_equals_scipy_median_filter() -> None:
    from scipy import ndimage

    from qprobe.backends.classic.scan import _median_map

    rng = np.random.default_rng(2)
    for shape in [(23, 31, 7), (2, 3, 7), (1, 1, 7)]:
        f = rng.normal(size=shape).astype(np.float32)
        ref = np.stack([ndimage.median_filter(f[..., k], size=7, mode="nearest") for k in range(shape[2])], axis=2)
        np.testing.assert_array_equal(_median_map(f, 3), ref)


def test_scan_on_tiny_image() -> None:
    s = block_features(np.zeros((5, 7, 3), np.uint8))
    assert np.isfinite(s.features).all()


def test_propose_prefers_anomalous_blobs_then_texture() -> None:
    s = block_features(make_texture(640, 960, seed=1))
    prob = np.zeros(s.shape, np.float32)
    prob[10:12, 20:23] = 0.9
    props = propose(s, prob, 3, 0.5, 200)
    assert props[0].source == "anomaly" and props[0].box.contains(Box(640, 320, 736, 384))
    assert [p.source for p in props[1:]] == ["texture", "texture"]
    assert all(p.box.width >= 200 and p.box.height >= 200 for p in props)


def test_windows_cover_neighbouring_evidence_with_one_native_zoom() -> None:
    s = block_features(make_texture(640, 960, seed=1))  # 20 x 30 blocks of 32 px
    prob = np.full(s.shape, 0.1, np.float32)
    prob[4:6, 4:6] = 0.99  # two flagged spots 96 px apart: one 320-px window holds both
    prob[4:6, 8:10] = 0.99
    prob[15, 25] = 0.9  # a lone block far away
    props = propose_windows(s, prob, 4, 320)
    first, second = props[0], props[1]
    assert first.source == second.source == "anomaly"
    assert first.box.contains(Box(128, 128, 192, 192)) and first.box.contains(Box(256, 128, 320, 192))
    assert first.box.width == first.box.height == 320  # native resolution: the window is the zoom box
    assert second.box.contains(Box(800, 480, 832, 512))
    assert [p.source for p in props[2:]] == ["texture", "texture"]
    for p in props:
        assert 0 <= p.box.x1 and p.box.x2 <= 960 and 0 <= p.box.y1 and p.box.y2 <= 640
    # the pair sits mid-window (best-centred of the tied windows), not at its edge
    assert first.box.center == (224.0, 160.0)
    # the texture zooms are centred outside what the anomaly crops (with their context) already showed
    seen = Box(first.box.x1 - 80, first.box.y1 - 80, first.box.x2 + 80, first.box.y2 + 80)
    for p in props[2:]:
        assert not seen.contains(Box(*p.box.center, *p.box.center))


def test_windows_rank_by_evidence_mass_and_fall_back_to_texture() -> None:
    s = block_features(make_texture(640, 960, seed=2))
    prob = np.full(s.shape, 0.2, np.float32)
    prob[2:12, 15:25] = 0.8  # a broad region of moderate evidence (100 blocks, logit 1.39 each)
    prob[17, 3] = 0.999  # one strong block (logit 6.9)
    props = propose_windows(s, prob, 3, 320)
    assert props[0].box.contains(Box(480, 64, 800, 384))
    assert props[1].box.contains(Box(96, 544, 128, 576))
    assert props[2].source == "texture"
    clean = propose_windows(s, np.full(s.shape, 0.3, np.float32), 3, 320)
    assert [p.source for p in clean] == ["texture"] * 3  # no evidence: probes still go where damage would show


def test_unknown_planner_is_refused() -> None:
    from qprobe.backends.classic.proposals import plan_zooms

    s = block_features(make_texture(128, 128, seed=3))
    with pytest.raises(ValueError, match="planner"):
        plan_zooms("grid", s, np.zeros(s.shape, np.float32), 2, 0.5, 64)
    from qprobe.backends import create_backend

    with pytest.raises(ValueError, match="planner"):
        create_backend("classic", planner="grid")


def test_detect_components_to_boxes() -> None:
    classes = ["clean", "blur", "noise"]
    probs = np.zeros((3, 10, 20), np.float32)
    probs[0] = 1.0
    probs[:, 2:5, 3:7] = np.array([0.1, 0.2, 0.7])[:, None, None]  # a noise blob
    probs[:, 8, 15] = np.array([0.1, 0.9, 0.0])  # a single cell: below min_cells
    sev = np.full((10, 20), 4.2)
    found = detect(probs, sev, classes, Box(100, 50, 300, 150), DetectorSettings(threshold=0.5, min_cells=2))
    assert len(found) == 1
    d = found[0]
    assert d.type == "noise" and d.severity == 4 and d.confidence == pytest.approx(0.9)
    assert d.bbox == Box(130, 70, 170, 100)  # cells 3..7 x 2..5 of a 10 px grid


def test_detect_grows_boxes_over_the_same_type_only_after_judging_the_core() -> None:
    classes = ["clean", "haze", "noise"]
    probs = np.zeros((3, 12, 20), np.float32)
    probs[0] = 1.0
    probs[:, 2:10, 2:10] = np.array([0.05, 0.9, 0.05])[:, None, None]  # a haze region, fairly sure
    probs[:, 4:7, 4:7] = np.array([0.001, 0.998, 0.001])[:, None, None]  # its certain core
    probs[:, 2:10, 10:14] = np.array([0.05, 0.05, 0.9])[:, None, None]  # a noise region touching it
    sev = np.full((12, 20), 3.0)
    crop = Box(0, 0, 200, 120)
    strict = DetectorSettings(threshold=0.99, min_cells=4)
    (core,) = detect(probs, sev, classes, crop, strict)
    assert core.bbox == Box(40, 40, 70, 70)
    grown = DetectorSettings(threshold=0.99, min_cells=4, grow=0.8)
    (d,) = detect(probs, sev, classes, crop, grown)
    assert d.bbox == Box(20, 20, 100, 100)  # the whole haze region, not the noise beside it
    assert (d.type, d.severity, d.confidence) == (core.type, core.severity, core.confidence)
    assert detect(probs, sev, classes, crop, DetectorSettings(threshold=0.99, min_cells=4, grow=0.95)) == [core]
    # the confirmation judges the core's box, before growth
    seen: list[Box] = []
    assert detect(probs, sev, classes, crop, grown, confirm=lambda b: seen.append(b) or False) == []
    assert seen == [core.bbox]
    assert detect(probs, sev, classes, crop, grown, confirm=lambda b: True) == [d]


def test_merge_defects() -> None:
    a = Defect(Box(0, 0, 100, 100), "noise", 3, 0.9)
    b = Defect(Box(10, 10, 110, 110), "blur", 2, 0.6)
    c = Defect(Box(500, 500, 600, 600), "blur", 2, 0.6)
    merged = merge_defects([b, a, c])
    assert len(merged) == 2 and merged[0].type == "noise" and merged[0].bbox == Box(0, 0, 110, 110)


def test_join_fragments_reports_one_box_per_region_of_one_type() -> None:
    row = [Defect(Box(x, 100, x + 100, 200), "ringing", s, c) for x, s, c in ((0, 2, 0.9), (150, 4, 0.99), (300, 3, 0.95))]
    far = Defect(Box(700, 100, 800, 200), "ringing", 5, 1.0)  # 300 px on: three box sides away
    other = Defect(Box(420, 100, 500, 200), "gaussian_blur", 3, 0.97)  # next to the row, another type
    out = join_fragments(row + [far, other])
    assert len(out) == 3
    (joined,) = [d for d in out if d.type == "ringing" and d.bbox.x1 == 0]
    assert joined.bbox == Box(0, 100, 400, 200) and joined.severity == 4 and joined.confidence == 0.99
    assert far in out and other in out
    # the gap is measured in the larger short side: at half of it the row stays apart
    assert len(join_fragments(row, gap=0.4)) == 3 and len(join_fragments(row, gap=0.5)) == 1
    # two boxes off each other's axis fill little of their union: they stay apart
    diagonal = [Defect(Box(0, 0, 100, 100), "jpeg", 3, 0.9), Defect(Box(180, 180, 280, 280), "jpeg", 3, 0.9)]
    assert len(join_fragments(diagonal)) == 2 and len(join_fragments(diagonal, fill=0.3)) == 2
    assert len(join_fragments(diagonal, fill=0.0)) == 1
    assert join_fragments(row, gap=-1) == row and join_fragments([]) == []
    # reach is judged on the boxes as found: a 2 x 2 block's 250-px union does not reach a box 200 px off
    block = [Defect(Box(x, y, x + 100, y + 100), "iso_noise", 2, 0.99) for x in (0, 150) for y in (0, 150)]
    lone = Defect(Box(450, 0, 550, 100), "iso_noise", 2, 0.99)
    assert [d.bbox for d in join_fragments([*block, lone])] == [Box(0, 0, 250, 250), lone.bbox]


def test_keep_factor_follows_the_proxy_damage_model() -> None:
    from qprobe.bench.labels import ProxyAnnotator

    size = (1000, 1000)
    assert keep_factor([], size) == 1.0
    big = Defect(Box(400, 400, 600, 600), "gaussian_blur", 4, 1.0)
    small = Defect(Box(400, 400, 430, 430), "gaussian_blur", 4, 1.0)
    mild = Defect(Box(400, 400, 600, 600), "gaussian_blur", 1, 1.0)
    unsure = Defect(Box(400, 400, 600, 600), "gaussian_blur", 4, 0.5)
    k = keep_factor([big], size)
    assert k == pytest.approx(1.0 - ProxyAnnotator().damage(big.bbox, "blur", 4, *size))
    assert k < keep_factor([small], size) < 1.0 and k < keep_factor([mild], size)
    assert k < keep_factor([unsure], size)  # confidence scales the damage
    assert keep_factor([big, small], size) < k  # damage accumulates


def test_the_first_found_defect_imports_no_slow_module() -> None:
    """Fusing a found defect reads the degradation registry, which must not pull in scipy.signal (≈ 0.6 s).

    The registry imports every degradation module for its families; a module-level
    ``from scipy import signal`` there once added most of a second to the first
    damaged image a process scored.
    """
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from qprobe.backends.classic.fusion import keep_factor; "
        "from qprobe.types import Box, Defect; "
        "k = keep_factor([Defect(Box(10, 10, 50, 50), 'motion_blur', 3, 0.9)], (200, 100)); "
        "print(json.dumps([k, 'scipy.signal' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    k, slow = json.loads(out.stdout)
    assert 0.0 < k < 1.0 and not slow


def test_fusion_keeps_the_global_score_without_defects() -> None:
    assert fuse(3.5, 1.0, (1.3,)) == pytest.approx(3.5)  # no defect found: crops cannot move the score
    assert fuse(3.5, 0.6, (1.0,)) == pytest.approx(1.0 + 2.5 * 0.6)
    assert fuse(3.5, 0.6, (2.0,)) < fuse(3.5, 0.6, (1.0,)) < 3.5
    assert 1.0 <= fuse(5.5, 1.0) <= 5.0
    # an image the global view saw whole: found defects are reported but do not move the score
    assert fuse(4.2, 0.6, (1.0,), unseen=0.0) == pytest.approx(4.2)
    assert fuse(4.2, 0.6, (1.0,), unseen=0.5) > fuse(4.2, 0.6, (1.0,), unseen=1.0)


def test_fit_fusion_recovers_alpha() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(2, 5, 300)
    keep = rng.uniform(0.3, 1.0, 300)
    y = 1.0 + (s - 1.0) * keep**1.5
    assert fit_fusion(s, keep, y) == pytest.approx((1.5,), abs=0.06)
    unseen = rng.uniform(0.2, 1.0, 300)
    y2 = 1.0 + (s - 1.0) * keep ** (1.5 * unseen)
    assert fit_fusion(s, keep, y2, unseen=unseen) == pytest.approx((1.5,), abs=0.06)
    assert fit_fusion(s, np.ones(300), s)[0] >= 0.0


def test_propose_caps_large_blobs_around_their_peak() -> None:
    s = block_features(make_texture(640, 960, seed=1))
    prob = np.zeros(s.shape, np.float32)
    prob[2:18, 2:28] = 0.7  # a blob covering most of the image
    prob[5, 20] = 0.95  # its peak
    (p,) = propose(s, prob, 1, 0.5, 128, max_side=256)
    assert p.box.width == 256 and p.box.height == 256
    assert p.box.contains(Box(640, 160, 672, 192))  # the peak block


def test_batchnorm_fusion_keeps_the_function() -> None:
    torch = pytest.importorskip("torch")
    from qprobe.backends.classic.mobilenet import MobileNetV2, fuse_batchnorm

    torch.manual_seed(0)
    m = MobileNetV2().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = m(x)
        fuse_batchnorm(m)
        after = m(x)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_policy_keeps_only_scan_supported_defects_and_grows_them() -> None:
    from types import SimpleNamespace

    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.scan import ScanMap

    pol = ClassicPolicy(SimpleNamespace(scan_threshold=0.5), None, 8)
    pol.image_size = (640, 320)
    prob = np.zeros((10, 20), np.float32)
    prob[2:6, 4:10] = 0.9  # a scan blob: x 128-320, y 64-192
    pol.scan, pol.prob = ScanMap(np.zeros((10, 20, 7), np.float32), 32, 640, 320), prob
    inside = Defect(Box(180, 80, 280, 160), "noise", 3, 0.9)
    elsewhere = Defect(Box(500, 200, 560, 260), "noise", 3, 0.9)
    assert pol.agrees(inside.bbox) and not pol.agrees(elsewhere.bbox)
    grown = pol._extent(inside)
    assert grown.bbox == Box(128, 64, 320, 192) and isinstance(grown.bbox.x1, float)
    tiny = Defect(Box(200, 100, 210, 110), "noise", 3, 0.9)  # the blob is > MAX_GROWTH x its area
    assert pol._extent(tiny).bbox == tiny.bbox


def test_fit_fusion_ignores_a_calibration_offset() -> None:
    """An offset between the regressor's scale and the targets must not pull alpha to 0."""
    rng = np.random.default_rng(2)
    s = rng.uniform(3.0, 4.0, 200)
    keep = np.where(rng.random(200) < 0.5, 1.0, rng.uniform(0.4, 0.95, 200))
    y = 1.0 + (s - 1.0) * keep**2.0
    assert fit_fusion(s, keep, y + 1.0) == pytest.approx((2.0,), abs=0.06)
    assert fit_fusion(s, keep, 0.5 * y) == pytest.approx((2.0,), abs=0.06)


def test_fusion_data_fits_only_images_alpha_acts_on() -> None:
    from qprobe.train_classic.fusion_fit import FusionData

    rng = np.random.default_rng(3)
    d = FusionData()
    for i in range(120):
        s, k = float(rng.uniform(2.5, 4.0)), float(rng.uniform(0.5, 1.0))
        bench = i % 2 == 0
        d.ids.append(f"i{i}")
        d.s_global.append(s)
        d.keep.append(k)
        d.unseen.append(0.9 if bench else 0.0)
        # bench targets follow alpha = 1.5; CLIVE-like rows (unseen 0) carry unrelated targets
        d.targets.append(1.0 + (s - 1.0) * k ** (1.5 * 0.9) if bench else float(rng.uniform(1, 5)))
        d.source.append("bench" if bench else "clive")
    assert d.fit() == pytest.approx((1.5,), abs=0.06)
    assert d.fit(exclude=[f"i{i}" for i in range(0, 120, 2)]) == (1.0,)  # nothing alpha acts on: the default


def test_fit_fusion_takes_the_weakest_alpha_the_data_supports() -> None:
    rng = np.random.default_rng(4)
    s = rng.uniform(3.0, 4.0, 60)
    keep = np.where(rng.random(60) < 0.5, 1.0, rng.uniform(0.4, 0.95, 60))
    y = 1.0 + (s - 1.0) * keep**2.0 + rng.normal(0, 0.3, 60)
    (best,) = fit_fusion(s, keep, y, n_boot=0)
    (chosen,) = fit_fusion(s, keep, y)
    assert 0.0 < chosen < best  # noisy data: a weaker alpha is within one standard error
    assert fit_fusion(s, keep, y) == (chosen,)  # deterministic


def test_policy_zooms_only_where_a_found_defect_could_be_kept() -> None:
    """A planned zoom whose crop holds no scan block above the agreement threshold is not made."""
    from types import SimpleNamespace

    from qprobe.agent.actions import Answer, Zoom
    from qprobe.agent.env import Observation, Turn
    from qprobe.backends.classic.detector import DetectorSettings
    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.proposals import Proposal
    from qprobe.backends.classic.scan import ScanMap

    prob = np.zeros((20, 40), np.float32)
    prob[2, 3] = 0.9  # one agreeing block at x 96-128, y 64-96
    far, near = Box(900, 300, 1000, 400), Box(160, 40, 260, 140)  # near: its 1.5x crop reaches x 135-285
    for confirmable_only, expect in ((True, []), (False, [far, near])):
        model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.8, detector=DetectorSettings(), fusion=[1.0])
        pol = ClassicPolicy(model, None, 8, confirmable_only=confirmable_only)
        pol.image_size, pol.view_scale = (1280, 640), 0.5
        pol.scan, pol.prob = ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640), prob
        pol.plan = [Proposal(far, 0.5, "texture"), Proposal(near, 0.5, "texture")]
        obs = Observation("crop", None, None, 1, zooms_left=8)
        made = []
        while isinstance(action := pol.act([Turn(obs)]), Zoom):
            made.append(action.box)
        assert made == expect and isinstance(action, Answer)
        assert pol.skipped == (2 if confirmable_only else 0)
    pol.plan, pol.skipped = [Proposal(Box(60, 40, 160, 140), 0.5, "anomaly")], 0
    pol.confirmable_only = True
    assert isinstance(pol.act([Turn(obs)]), Zoom) and pol.skipped == 0  # its crop covers the block


def test_skipped_zooms_do_not_spend_their_budget_further_down_the_plan() -> None:
    """The rule only leaves zooms out: with a budget of 2, a confirmable third proposal is still not made."""
    from types import SimpleNamespace

    from qprobe.agent.actions import Answer, Zoom
    from qprobe.agent.env import Observation, Turn
    from qprobe.backends.classic.detector import DetectorSettings
    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.proposals import Proposal
    from qprobe.backends.classic.scan import ScanMap

    prob = np.full((20, 40), 0.9, np.float32)
    prob[:, :20] = 0.0  # the left half cannot confirm anything
    model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.8, detector=DetectorSettings(), fusion=[1.0])
    pol = ClassicPolicy(model, None, 2)
    pol.image_size, pol.view_scale = (1280, 640), 0.5
    pol.scan, pol.prob = ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640), prob
    left, right, right2 = Box(100, 100, 200, 200), Box(1000, 100, 1100, 200), Box(1000, 400, 1100, 500)
    pol.plan = [Proposal(b, 0.5, "anomaly") for b in (left, right, right2)]
    made, left_over = [], 2
    while isinstance(action := pol.act([Turn(Observation("crop", None, None, 1, zooms_left=left_over))]), Zoom):
        made.append(action.box)
        left_over -= 1
    assert made == [right] and isinstance(action, Answer) and pol.skipped == 1


def test_extra_zooms_are_made_only_where_the_scan_is_sure_and_replay_decides_alike() -> None:
    """Past the base budget a confirmable zoom is made only where a block reaches extra_zoom_prob."""
    from types import SimpleNamespace

    from qprobe.agent.actions import Answer, Zoom
    from qprobe.agent.env import Observation, Turn
    from qprobe.backends.classic.detector import DetectorSettings
    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.proposals import Proposal
    from qprobe.backends.classic.scan import ScanMap

    prob = np.zeros((20, 40), np.float32)
    prob[:, 20:] = 0.9  # the right half confirms (agreement 0.8) but is not sure
    prob[15:, 30:] = 0.97  # ... except its bottom-right corner
    model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.8, detector=DetectorSettings(), fusion=[1.0])
    scan = ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640)
    first, weak, sure, last_weak = (Box(1000, 100, 1100, 200), Box(700, 100, 800, 200),
                                    Box(1100, 500, 1200, 600), Box(700, 300, 800, 400))
    plan = [first, weak, sure, last_weak]
    for extra, expect in ((2, [first, weak, sure]), (0, plan), (3, [first, sure])):
        # no crop here finds a defect: this test is about the scan's rule alone (the next one about the defect's)
        pol = ClassicPolicy(model, None, 4, extra_zooms=extra, extra_zoom_prob=0.95, extra_need_defect=False)
        assert pol.base_zooms == 4 - extra
        pol.image_size, pol.view_scale = (1280, 640), 0.5
        pol.scan, pol.prob = scan, prob
        pol.plan = [Proposal(b, 0.5, "anomaly") for b in plan]
        made, left = [], 4
        while isinstance(action := pol.act([Turn(Observation("crop", None, None, 1, zooms_left=left))]), Zoom):
            made.append(action.box)
            left -= 1
        assert made == expect and isinstance(action, Answer)
        assert pol.extra_made == sum(1 for k, b in enumerate(plan) if k >= 4 - extra and b in expect)
        assert action.extra["classic"]["extra_zooms"] == pol.extra_made
        # a replay of the four planned crops (their boxes as the environment opened them) decides alike
        rep = ClassicPolicy.from_record(
            model, scan, prob, 3.0, 0.5, (1280, 640), base_zooms=4 - extra, extra_need_defect=False
        )
        crops = [pol._crop_box(b) for b in plan]
        assert [b for k, b in enumerate(plan) if rep.would_make(k, crops[k])] == expect
    old = ClassicPolicy.from_record(model, scan, prob, 3.0, 0.5, (1280, 640))  # no base recorded: all base zooms
    assert all(old.would_make(k, old._crop_box(b)) for k, b in enumerate(plan))


def test_extra_zooms_wait_for_a_found_defect_and_start_their_crops_only_then() -> None:
    """By default an extra zoom is made, and its crop started on the workers, only once a zoom found a defect.

    The live episode and a replay of its recorded crops decide alike; a photo
    whose base zooms found nothing ends after them.
    """
    from concurrent.futures import Future
    from types import SimpleNamespace

    from qprobe.agent.actions import Answer, Zoom
    from qprobe.agent.cropping import crop
    from qprobe.agent.env import Observation, Turn
    from qprobe.backends.classic.detector import DetectorSettings
    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.proposals import Proposal
    from qprobe.backends.classic.scan import ScanMap
    from qprobe.types import Defect

    prob = np.full((20, 40), 0.97, np.float32)  # every crop confirms and the scan is sure everywhere
    scan = ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640)
    image = np.zeros((640, 1280, 3), np.uint8)
    plan = [Box(100 + 250 * k, 100, 200 + 250 * k, 200) for k in range(4)]  # two base zooms, two extra
    for found_in in (None, 0, 1):  # which base zoom's crop finds a defect
        started: list[Box] = []
        pol: ClassicPolicy

        def start(pixels: np.ndarray) -> Future:
            fut: Future = Future()
            fut.set_result(np.zeros((1, 1, 1), np.float32))
            at = pixels.__array_interface__["data"][0]  # which planned crop: the same memory of the image
            started.append(next(b for b in plan if crop(image, pol._crop_box(b)).__array_interface__["data"][0] == at))
            return fut

        def detect(rgb: np.ndarray, box: Box, confirm=None, maps=None) -> list[Defect]:
            hit = found_in is not None and box == pol._crop_box(plan[found_in])
            return [Defect(Box(box.x1 + 1, box.y1 + 1, box.x1 + 40, box.y1 + 40), "jpeg", 3, 0.999)] if hit else []

        model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.8, detector=DetectorSettings(), fusion=[1.0],
                                defect_maps_async=start, detect=detect)
        pol = ClassicPolicy(model, None, 4, extra_zooms=2, extra_zoom_prob=0.95)
        assert pol.extra_need_defect and pol.base_zooms == 2
        pol._image, pol.image_size, pol.view_scale = image, (1280, 640), 0.5
        pol.scan, pol.prob = scan, prob
        pol.plan = [Proposal(b, 0.5, "anomaly") for b in plan]
        history = [Turn(Observation("global", None, None, 0, zooms_left=4))]
        made: list[Box] = []
        while isinstance(action := pol.act(history), Zoom):
            if len(made) == 0:  # the first zoom starts the base crops only
                assert started == plan[:2]
            if found_in == 0 and len(made) == 1:  # crop 0 found one: the extra crops start behind crop 1
                assert started == plan
            made.append(action.box)
            eff = pol._crop_box(action.box)
            history.append(Turn(Observation("crop", crop(image, eff), eff, len(history), zooms_left=4 - len(made))))
        assert isinstance(action, Answer)
        want = plan[:2] if found_in is None else plan
        assert made == want and started == want and action.extra["classic"]["extra_zooms"] == len(want) - 2
        # a replay of the four recorded crops, asked in turn, makes the same zooms
        rep = ClassicPolicy.from_record(model, scan, prob, 3.0, 0.5, (1280, 640), base_zooms=2, extra_zoom_prob=0.95)
        kept = []
        for k, b in enumerate(plan):
            eff = pol._crop_box(b)
            if rep.would_make(k, eff):
                kept.append(b)
                rep.add_crop(detect(crop(image, eff), eff))
        assert kept == want
    # without the rule every sure extra zoom is made, found defect or not
    off = ClassicPolicy.from_record(model, scan, prob, 3.0, 0.5, (1280, 640), base_zooms=2, extra_need_defect=False)
    assert all(off.would_make(k, pol._crop_box(b)) for k, b in enumerate(plan)) and not off.defects


def test_a_reported_box_keeps_the_heads_side_where_a_crop_saw_past_it() -> None:
    """The box grown over the scan's blob is reported with the head's own sides where a crop saw past them.

    The sides no crop saw past keep the grown extent; the score (fused from
    the grown boxes), the number of boxes and a replay without crop boxes or
    with ``trim_margin`` 0 are as before.
    """
    from types import SimpleNamespace

    from qprobe.backends.classic.detector import DetectorSettings
    from qprobe.backends.classic.policy import ClassicPolicy
    from qprobe.backends.classic.scan import ScanMap
    from qprobe.types import Defect

    prob = np.zeros((20, 40), np.float32)
    prob[5:15, 10:30] = 0.99  # a scan blob over x 320-960, y 160-480
    scan = ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640)
    model = SimpleNamespace(scan_threshold=0.5, agree_threshold=0.8, detector=DetectorSettings(), fusion=[1.0])
    head = Defect(Box(400, 200, 700, 420), "jpeg", 3, 0.999)  # the head's box inside the blob
    crop = Box(300, 100, 710, 430)  # saw 100 px past its left and top sides, not past its right and bottom

    def answer(margin: float | None, crop_box: Box | None) -> object:
        pol = ClassicPolicy.from_record(model, scan, prob, 3.5, 0.25, (1280, 640), trim_margin=margin)
        pol.add_crop([head], crop_box)
        return pol.answer()

    trimmed, grown, unknown = answer(None, crop), answer(0.0, crop), answer(None, None)
    assert [d.bbox for d in grown.defects] == [Box(320, 160, 960, 480)]  # the blob's extent, as scored
    assert [d.bbox for d in trimmed.defects] == [Box(400, 200, 960, 480)]
    assert trimmed.extra["classic"]["trimmed_boxes"] == 1 and grown.extra["classic"]["trimmed_boxes"] == 0
    assert trimmed.score == grown.score == unknown.score < 3.5
    assert [d.bbox for d in unknown.defects] == [Box(320, 160, 960, 480)]  # no crop known: nothing seen past
    wide = answer(None, Box(300, 100, 760, 470))  # this crop saw 60 / 50 px past the right and bottom too
    assert [d.bbox for d in wide.defects] == [head.bbox]
    # with a 64-px margin only its left and top (100 px seen) count as seen past
    assert [d.bbox for d in answer(64.0, Box(300, 100, 760, 470)).defects] == [Box(400, 200, 960, 480)]
    # the calibration's replay of a recorded episode passes each crop's box, as the live policy has it
    from qprobe.train_classic.calibrate import Episode, replay_episode

    model.detections_from_maps = lambda maps, box, confirm=None: [head]
    ep = Episode("degraded", None, [], [(np.zeros((1, 1, 1), np.float32), crop)], scan, prob, 3.5, 0.25, (1280, 640))
    ans, made = replay_episode(model, ep)
    assert [b for _, b in made] == [crop] and [d.bbox for d in ans.defects] == [Box(400, 200, 960, 480)]


def test_scan_probability_model_without_blas_matches_the_float64_model() -> None:
    """probability_map (numpy's own loops, no BLAS threads) computes the MLP / logistic model it stores."""
    from qprobe.backends.classic.scan import probability_map

    rng = np.random.default_rng(0)
    ctx = rng.normal(size=(60, 90, 22)).astype(np.float32)
    hidden = rng.normal(size=(22, 16)).astype(np.float32)
    weights = rng.normal(size=17).astype(np.float32) * 0.3

    def ref(logit: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))).reshape(60, 90)

    x = ctx.reshape(-1, 22).astype(np.float64)
    mlp = ref(np.maximum(x @ hidden.astype(np.float64), 0.0) @ weights[:-1].astype(np.float64) + weights[-1])
    logistic = ref(x @ hidden[:, 0].astype(np.float64))
    got = probability_map(ctx, weights, hidden)
    assert got.dtype == np.float32 and got.shape == (60, 90)
    np.testing.assert_allclose(got, mlp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probability_map(ctx, hidden[:, 0]), logistic, rtol=1e-5, atol=1e-6)


def test_the_answer_reports_joined_boxes_and_fuses_the_damage_as_found() -> None:
    from types import SimpleNamespace

    from qprobe.agent.actions import Answer
    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.backends.classic.policy import ClassicPolicy

    model = SimpleNamespace(detector=DetectorSettings(merge_iou=0.2), fusion=[1.0], scan_threshold=0.5)
    found = [Defect(Box(x, 400, x + 120, 520), "ringing", 3, 0.99) for x in (1000, 1160, 1320)]

    def answer(**kw: float) -> Answer:
        pol = ClassicPolicy.from_record(model, None, None, 4.0, 0.25, (4000, 3000))
        for k, v in kw.items():
            setattr(pol, k, v)
        pol.add_crop(found)
        return pol.answer()

    joined, apart = answer(), answer(join_gap=-1.0)
    assert [d.bbox for d in joined.defects] == [Box(1000, 400, 1440, 520)]
    assert sorted(d.bbox.x1 for d in apart.defects) == [1000, 1160, 1320]
    assert joined.extra["classic"]["joined_boxes"] == 2 and apart.extra["classic"]["joined_boxes"] == 0
    assert joined.score == apart.score < 4.0  # the score weighs the damage the head found, not the union's gaps
    pol = ClassicBackend(join_gap=0.5, join_fill=0.2).policy_for(SimpleNamespace(), None)
    assert (pol.join_gap, pol.join_fill) == (0.5, 0.2)
    with pytest.raises(ValueError, match="join_fill"):
        ClassicBackend(join_fill=1.5)
