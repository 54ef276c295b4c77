"""Helpers of the benchmark scripts: mosaic seams (eval_classic_bench.py), oracle zooms (eval_oracle_zooms.py),
type cuts (replay_type_cuts.py), head ensembles (replay_head_ensemble.py), misses (where_misses_go.py), the parts
of an assessment (bench_score.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from qprobe.types import Box

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ecb():
    return _script("eval_classic_bench")


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(7671, 2136, 7686, 2484), True),  # a thin box on the seam x = 3 * 2560
        (Box(2528, 4256, 2648, 5376), True),  # across x = 2560
        (Box(1420, 1609, 1792, 1720), True),  # just below y = 1600, within the tolerance
        (Box(4984, 2858, 5216, 3840), True),  # across y = 3200
        (Box(9271, 3400, 9402, 3463), False),  # inside a tile
        (Box(6304, 4864, 6560, 5120), False),
        (Box(10, 10, 100, 100), False),  # the image border is no seam
        (Box(2600, 1650, 5000, 3150), False),  # inside one tile, 40 px from its edges
    ],
)
def test_false_boxes_on_mosaic_seams_are_recognised(ecb, box: Box, expected: bool) -> None:
    assert ecb.on_seam(box, (2560, 1600)) is expected


def test_oracle_zooms_are_squares_on_each_defect_at_least_a_zoom_wide() -> None:
    from types import SimpleNamespace

    from qprobe.types import Defect

    oz = _script("eval_oracle_zooms")
    row = SimpleNamespace(defects=[Defect(Box(100, 200, 180, 240), "jpeg", 3), Defect(Box(0, 0, 900, 500), "haze", 2)])
    small, large = oz.oracle_boxes(row, 320.0)
    assert (small.width, small.height) == (320.0, 320.0) and small.center == (140.0, 220.0)
    assert (large.width, large.height) == (900.0, 900.0) and large.center == (450.0, 250.0)


def test_within_photo_srcc_ranks_each_photos_copies_apart_from_its_content_level(ecb) -> None:
    # two photos, each ranked perfectly among its own copies, but photo b scores 2 points lower throughout:
    # pooled SRCC suffers from the offset, within-photo SRCC does not
    mos = [4.6, 3.5, 2.5, 4.6, 3.8, 3.0]
    scores = [4.0, 3.6, 3.0, 2.0, 1.8, 1.5]
    photo = ["a", "a", "a", "b", "b", "b"]
    assert ecb.within_photo_srcc(scores, mos, photo) == pytest.approx(1.0)
    # one photo ranked backwards: the mean of +1 and -1
    assert ecb.within_photo_srcc(scores[:3] + scores[3:][::-1], mos, photo) == pytest.approx(0.0)
    # photos with fewer than three images, or one MOS for all, are left out
    assert math.isnan(ecb.within_photo_srcc([1.0, 2.0, 3.0, 4.0], [4.6, 4.6, 4.6, 3.0], ["a", "a", "a", "b"]))
    # constant scores on a photo whose MOS differ rank nothing: 0, not NaN
    assert ecb.within_photo_srcc([3.0, 3.0, 3.0], [4.6, 3.0, 2.0], ["a"] * 3) == 0.0


def test_oracle_score_is_the_fusion_of_the_true_defects_at_full_confidence(ecb) -> None:
    from qprobe.backends.classic.fusion import fuse, keep_factor
    from qprobe.types import Defect

    size = (3840, 2160)
    assert ecb.oracle_score(3.7, 0.98, [], size, (1.3,)) == 3.7  # nothing to find: the global score
    gt = [Defect(Box(100, 100, 700, 500), "gaussian_blur", 4, 0.2), Defect(Box(2000, 900, 2400, 1300), "jpeg", 2)]
    full = [Defect(d.bbox, d.type, d.severity, 1.0) for d in gt]
    want = fuse(3.7, keep_factor(full, size), (1.3,), 0.98)
    assert ecb.oracle_score(3.7, 0.98, gt, size, (1.3,)) == pytest.approx(want)
    assert want < 3.7
    # more damage, lower ceiling; an image the global view saw whole (unseen 0) keeps its global score
    assert ecb.oracle_score(3.7, 0.98, gt + [Defect(Box(0, 1500, 900, 2160), "haze", 5)], size, (1.3,)) < want
    assert ecb.oracle_score(3.7, 0.0, gt, size, (1.3,)) == pytest.approx(3.7)


def test_type_cut_replay_adds_only_the_chosen_types_found_at_the_lower_cut() -> None:
    from types import SimpleNamespace

    from qprobe.backends.classic.detector import DetectorSettings, detect, softmax

    rt = _script("replay_type_cuts")
    classes = ["clean", "haze", "jpeg"]
    logits = np.zeros((4, 8, 8), dtype=np.float32)  # clean, haze, jpeg, severity
    logits[1, :3, :3] = 3.0  # p(defect) = 1 - 1 / (1 + e^3 + 1) ≈ 0.95: below 0.99, above 0.9
    logits[2, 5:, 5:] = 3.0

    def first(maps, box, lattice=None, confirm=None):
        n = len(classes)
        return detect(softmax(maps[:n], axis=0), 1.0 + 4.0 / (1.0 + np.exp(-maps[n])), classes, box, model.detector)

    model = SimpleNamespace(classes=classes, detector=DetectorSettings(threshold=0.99, min_cells=4), detections_from_maps=first)
    box = Box(0, 0, 128, 128)
    assert first(logits, box) == []  # the shipped point finds nothing
    found = rt.two_pass(model, ["haze"], 0.9, 4)(logits, box)
    assert [(d.type, d.bbox.to_list(0)) for d in found] == [("haze", [0, 0, 48, 48])]
    assert rt.two_pass(model, ["haze"], 0.9, 16)(logits, box) == []  # 9 cells < 16
    assert rt.two_pass(model, ["haze"], 0.995, 4)(logits, box) == []  # a cut above the point adds nothing
    both = rt.two_pass(model, ["haze", "jpeg"], 0.9, 4)(logits, box)
    assert sorted(d.type for d in both) == ["haze", "jpeg"]


def test_head_ensemble_is_the_geometric_mean_of_the_heads_and_pairs_only_identical_zooms() -> None:
    from qprobe.backends.classic.detector import softmax

    he = _script("replay_head_ensemble")
    n = 3  # clean, haze, jpeg; then severity, then the banding evidence
    rng = np.random.default_rng(0)
    a = rng.normal(0, 3, (n + 2, 4, 5)).astype(np.float32)
    b = rng.normal(0, 3, (n + 2, 4, 5)).astype(np.float32)
    # one head alone: its own probabilities and severity, extras kept
    np.testing.assert_allclose(softmax(he.combine_maps([a], n)[:n], axis=0), softmax(a[:n], axis=0), rtol=1e-5, atol=1e-6)
    both = he.combine_maps([a, b], n)
    geo = np.sqrt(softmax(a[:n], axis=0) * softmax(b[:n], axis=0))
    np.testing.assert_allclose(softmax(both[:n], axis=0), geo / geo.sum(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(both[n], (a[n] + b[n]) / 2, rtol=1e-5)
    np.testing.assert_array_equal(both[n + 1], a[n + 1])  # the crop's own evidence, from the first map
    # a head sure of "clean" pulls a cell the other calls certain damage below a 0.99 cut
    sure = np.zeros((n + 1, 1, 1), dtype=np.float32)
    sure[1] = 12.0  # p(haze) ≈ 1 - 1e-5
    calm = np.zeros((n + 1, 1, 1), dtype=np.float32)
    calm[0] = 6.0  # p(clean) ≈ 0.995
    p_def = 1 - softmax(he.combine_maps([sure, calm], n)[:n], axis=0)[0, 0, 0]
    assert 0.5 < p_def < 0.99
    with pytest.raises(ValueError, match="differ in shape"):
        he.combine_maps([a, b[:, :3]], n)

    from qprobe.train_classic.calibrate import Episode

    def episode(*boxes):
        return Episode("clean", 4.6, [], [(a, box) for box in boxes], None, None, 3.0, 1.0, (128, 64))

    one, two = Box(0, 0, 64, 64), Box(64, 0, 128, 64)
    joint = he.ensemble_episodes([[episode(one, two)], [episode(one, two)]], n)
    assert [box for _, box in joint[0].crops] == [one, two]
    with pytest.raises(ValueError, match="zoomed differently"):
        he.ensemble_episodes([[episode(one, two)], [episode(two, one)]], n)


def test_misses_are_put_in_the_first_stage_that_lost_them() -> None:
    """Four defects on one recorded episode: found; zoomed, the head silent; never zoomed, scan above / below."""
    from types import SimpleNamespace

    from qprobe.backends.classic.detector import DetectorSettings, detect, softmax
    from qprobe.backends.classic.scan import ScanMap
    from qprobe.train_classic.calibrate import Episode

    wm = _script("where_misses_go")
    classes = ["clean", "haze", "jpeg"]

    def detections(maps, box, lattice=None, confirm=None):
        n = len(classes)
        probs, sev = softmax(maps[:n], axis=0), 1.0 + 4.0 / (1.0 + np.exp(-maps[n]))
        return detect(probs, sev, classes, box, model.detector, None, confirm)

    model = SimpleNamespace(
        classes=classes, detector=DetectorSettings(threshold=0.99, min_cells=4), detections_from_maps=detections,
        scan_threshold=0.5, agree_threshold=0.8, fusion=[1.0],
    )
    found, silent = Box(96, 96, 192, 192), Box(416, 96, 512, 192)
    above, below = Box(992, 416, 1088, 512), Box(704, 416, 800, 512)
    prob = np.zeros((20, 40), np.float32)
    for b in (found, silent, above):
        prob[int(b.y1) // 32 : int(b.y2) // 32, int(b.x1) // 32 : int(b.x2) // 32] = 0.9
    fires = np.zeros((4, 20, 20), np.float32)  # a 320-px crop's 16-px cells: jpeg over the first defect
    fires[2, 6:12, 6:12] = 12.0
    crops = [(fires, Box(0, 0, 320, 320)), (np.zeros((4, 20, 20), np.float32), Box(304, 0, 624, 320))]
    ep = Episode("degraded", 3.0, [found, silent, above, below], crops,
                 ScanMap(np.zeros((20, 40, 7), np.float32), 32, 1280, 640), prob, 4.0, 0.4, (1280, 640))
    labels = [SimpleNamespace(type=t, severity=3) for t in ("jpeg", "jpeg", "haze", "jpeg")]
    row = SimpleNamespace(id="img", defects=labels)
    total, missed = wm.misses(model, [ep], [row])
    assert total == 4
    assert [(m["type"], m["stage"]) for m in missed] == [
        ("jpeg", "zoomed, head silent"), ("haze", "never, scan above"), ("jpeg", "never, scan below")
    ]
    assert missed[0]["covered"] == 1.0 and missed[0]["head"] < 0.99 and missed[2]["scan"] == 0.0


def test_relative_head_drops_a_box_only_where_its_type_fires_elsewhere_in_the_photo() -> None:
    from qprobe.types import Defect

    rr = _script("replay_relative_head")
    classes = ["clean", "ringing", "jpeg"]
    quiet = np.zeros((4, 8, 8), dtype=np.float32)  # clean, ringing, jpeg, severity: every cell clean
    quiet[0] = 6.0
    hit = quiet.copy()
    hit[0, :2, :2], hit[1, :2, :2] = 0.0, 8.0  # ringing in the top-left 2 x 2 cells (32 px) of the first zoom
    box_a, box_b = Box(0, 0, 128, 128), Box(512, 0, 640, 128)
    ring = Defect(Box(0, 0, 32, 32), "ringing", 3, 0.99)

    cells = rr.crop_cells([(hit, box_a), (quiet, box_b)], len(classes))
    assert cells is not None and len(cells[0]) == 128
    assert rr.type_share(cells, [ring.bbox], 1, 0.5) == 0.0  # its own cells do not count against it
    assert rr.relative_keep([ring], cells, classes, 0.5, 0.02) == [ring]

    # the second zoom shows ringing on a quarter of its cells: 16 of the 124 cells outside the box
    halo = quiet.copy()
    halo[0, 4:, 4:], halo[1, 4:, 4:] = 0.0, 8.0
    cells = rr.crop_cells([(hit, box_a), (halo, box_b)], len(classes))
    assert math.isclose(rr.type_share(cells, [ring.bbox], 1, 0.5), 16 / 124)
    assert rr.type_share(cells, [ring.bbox], 2, 0.5) == 0.0  # as jpeg, nothing fires
    assert rr.relative_keep([ring], cells, classes, 0.5, 0.02) == []
    assert rr.relative_keep([ring], cells, classes, 0.5, 0.2) == [ring]  # under tau
    assert rr.relative_keep([ring], cells, classes, 0.5, 0.02, types={"jpeg"}) == [ring]  # ringing not judged
    assert rr.relative_keep([ring], None, classes, 0.5, 0.02) == [ring]  # no zoom made: nothing to compare


def test_head_mining_picks_the_pool_crops_where_the_head_fires() -> None:
    hm = _script("eval_head_mining")
    p_def = np.zeros((6, 6))
    p_def[0, :3] = 0.95  # three cells in a row
    p_def[1, 3] = 0.95  # diagonal to the row's end: the same 8-connected component
    p_def[5, 5] = 0.999  # alone
    assert hm.largest_component(p_def, 0.9) == 4
    assert hm.largest_component(p_def, 0.99) == 1
    assert hm.largest_component(p_def, 0.9995) == 0
    stats = [{"largest": {"0.9": c}} for c in (0, 4, 3, 8)]
    assert hm.hard_indices(stats, 0.9, 4) == [1, 3]
    picked = hm.control_indices(100, 7)
    assert picked == sorted(set(picked)) and len(picked) == 7 and max(picked) < 100
    assert hm.control_indices(100, 7) == picked  # seeded: the same control every run


def test_a_whole_photo_sharpened_keeps_flat_areas_and_overshoots_at_edges() -> None:
    hm = _script("eval_head_mining")
    img = np.full((32, 32, 3), 100, dtype=np.uint8)
    img[:, 16:] = 160  # one vertical edge
    out = hm.sharpen(img, 1.0, 1.5)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert (out[:, :8] == 100).all() and (out[:, 24:] == 160).all()  # far from the edge: unchanged
    assert out[:, 15].max() < 100 and out[:, 16].min() > 160  # halos: darker before the edge, brighter after
    assert (hm.sharpen(img, 0.0, 1.5) == img).all()


def test_a_whole_photo_rescaled_keeps_its_content_and_changes_its_detail_per_pixel() -> None:
    hm = _script("eval_head_mining")
    rng = np.random.default_rng(3)
    img = np.repeat(np.repeat(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), 4, axis=0), 4, axis=1)
    assert (hm.rescale(img, 1.0) == img).all()
    small, large = hm.rescale(img, 0.5), hm.rescale(img, 1.5)
    assert small.shape == (32, 48, 3) and large.shape == (96, 144, 3) and large.dtype == np.uint8
    assert abs(float(small.mean()) - float(img.mean())) < 2
    assert abs(float(large.mean()) - float(img.mean())) < 2

    def smoothness(a: np.ndarray) -> float:
        """Correlation of horizontal neighbours: higher = less detail per pixel."""
        f = a.astype(np.float64).mean(axis=2)
        return float(np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1])

    assert smoothness(small) + 0.15 < smoothness(img) < smoothness(large) - 0.1  # denser shrunk, softer grown


def test_the_parts_of_an_assessment_are_each_timed_and_summed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights
    from conftest import make_texture

    from qprobe.backends import create_backend
    from qprobe.io import save_image

    bench = _script("bench_score")
    weights = make_random_weights(tmp_path / "w.pt")
    scorer = create_backend(
        "classic", weights=str(weights), max_zooms=2, extra_zooms=0, view_long_side=256, zoom_side=96, max_crop_side=192
    )
    path = tmp_path / "photo.png"
    save_image(path, make_texture(400, 600, seed=3))
    a = scorer.assess(str(path))
    bench.time_parts(scorer, path, list(a.probes) or [Box(0, 0, 200, 200)], 2, 1.0, 0.05)
    out = capsys.readouterr().out
    names = ["decode", "global view", "global score", "scan and zoom plan", "zoom crops", "view fingerprints"]
    assert all(n in out for n in names), out
    rows = [line.split() for line in out.splitlines() if line.startswith("    ") and "sum of CPU" not in line]
    cpu = [float(r[-1]) for r in rows]
    assert len(cpu) == len(names) and all(c >= 0.0 for c in cpu)
    (total,) = [line for line in out.splitlines() if "sum of CPU" in line]
    printed = float(total.split("sum of CPU")[1].split()[0])
    assert abs(printed - sum(cpu)) <= 0.0005 * len(cpu) + 1e-9  # the parts are printed rounded
    assert "(the whole assessment: 1.000 s)" in total
    assert "0.250 s" in out  # 5 x the given decode time


def test_a_rescanned_episode_has_the_live_policys_scan_probabilities() -> None:
    from types import SimpleNamespace

    from qprobe.backends import create_backend

    rs = _script("replay_scan_agreement")
    backend = create_backend("classic")
    m = backend.model
    rng = np.random.default_rng(0)
    img = (rng.random((384, 640, 3)) * 255).astype(np.uint8)
    img[96:224, 160:352] = img[96:224, 160:352] // 4 + 96  # a low-contrast patch the scan sees
    pol = backend.policy_for(m, img)
    pol._planned()  # the scan and the plan, as the live policy makes them (in the background)
    ep = SimpleNamespace(scan=pol.scan, prob=pol.prob)
    own = {
        "weights": m.scan_weights,
        "hidden": m.scan_hidden,
        "threshold": m.scan_threshold,
        "radius": m.scan_radius,
    }
    same = rs.rescan(ep, own, backend.config.max_scan_share)
    np.testing.assert_array_equal(same.prob, pol.prob)  # the live policy's map, from the recorded features
    assert ep.prob is pol.prob  # the episode itself is left as it was
    other = rs.rescan(ep, dict(own, weights=-np.asarray(m.scan_weights)), backend.config.max_scan_share)
    assert not np.allclose(other.prob, pol.prob)
    assert [rs.family(n) for n in ("held_s0", "fresh_s203", "bench_cal")] == ["held-out", "fresh", "other"]
