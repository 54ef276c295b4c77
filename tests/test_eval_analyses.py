"""Analyses against the Backend contract, with a fake prober and (if present) the dummy backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers_eval import NOISE_BOX, FakeProber, make_bench

from qprobe.eval.analyses import (
    best_ious,
    clean_probe_boxes,
    crop_bias,
    crop_coverage,
    dof_false_positives,
    localization,
    occlusion,
    run_analyses,
    write_analyses,
)
from qprobe.eval.datasets import load_dataset
from qprobe.io import load_rgb
from qprobe.types import Assessment, Box, Defect


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("bench")
    make_bench(root)
    return load_dataset("qprobe-bench", root)


def test_best_iou_and_localization_numbers(bench: list) -> None:
    assert best_ious([Box(0, 0, 10, 10)], [Box(0, 0, 10, 5), Box(50, 50, 60, 60)]) == [0.5]
    assert best_ious([Box(0, 0, 10, 10)], []) == [0.0]
    deg = [r for r in bench if r.extra["kind"] == "degraded"]
    clean = [r for r in bench if r.extra["kind"] == "clean"]
    hit = Assessment(3.0, defects=[Defect(Box(96, 64, 160, 112), "noise")])  # IoU 0.75
    half = Assessment(3.0, defects=[Defect(Box(96, 64, 128, 128), "noise")])  # IoU 0.5
    miss = Assessment(3.0, defects=[Defect(Box(0, 0, 20, 20), "noise")])
    fp = Assessment(4.0, defects=[Defect(Box(0, 0, 9, 9), "blur"), Defect(Box(9, 9, 19, 19), "noise")])
    loc = localization(deg + clean[:2], [hit, half, miss, fp, Assessment(4.5)])
    assert loc["n_gt_boxes"] == 3 and loc["mean_iou"] == pytest.approx((0.75 + 0.5 + 0) / 3)
    assert loc["recall@0.3"] == pytest.approx(2 / 3) and loc["recall@0.5"] == pytest.approx(2 / 3)
    assert loc["fp_boxes_per_clean_image"] == pytest.approx(1.0)
    failed = localization(deg[:1], [Assessment(None, error="x")])
    assert failed["n_failed"] == 1 and failed["mean_iou"] is None


def test_crop_coverage_numbers(bench: list) -> None:
    deg = [r for r in bench if r.extra["kind"] == "degraded"][:2]
    on = Assessment(3.0, probes=[NOISE_BOX])
    left_half = Assessment(3.0, probes=[Box(NOISE_BOX.x1, NOISE_BOX.y1, 128, NOISE_BOX.y2)])
    cov = crop_coverage(deg, [on, left_half])
    assert cov["defect_area_covered"] == pytest.approx(0.75)
    image_share = NOISE_BOX.area / (256 * 192)
    assert cov["image_area_probed"] == pytest.approx((image_share + image_share / 2) / 2, rel=1e-3)
    assert cov["concentration"] > 1


def test_dof_false_positives(bench: list) -> None:
    dof = [r for r in bench if r.extra["kind"] == "dof"]
    clean = [r for r in bench if r.extra["kind"] == "clean"]
    blur = Assessment(3.0, defects=[Defect(Box(0, 0, 10, 10), "gaussian_blur")])
    res = dof_false_positives(
        dof + clean,
        [
            blur,
            Assessment(4.0),
            blur,
            Assessment(4.5),
            Assessment(4.5),
            Assessment(4.5, defects=[Defect(Box(0, 0, 5, 5), "noise")]),
        ],
    )
    assert res["dof"]["share_with_defects"] == pytest.approx(2 / 3)
    assert res["dof"]["share_with_blur_defects"] == pytest.approx(2 / 3)
    assert res["clean"]["share_with_defects"] == pytest.approx(1 / 3)
    assert res["clean"]["share_with_blur_defects"] == 0


def test_clean_probe_boxes_avoid_defects(bench: list) -> None:
    import numpy as np

    deg = next(r for r in bench if r.extra["kind"] == "degraded")
    boxes = clean_probe_boxes(deg, 3, np.random.default_rng(0))
    assert len(boxes) == 3 and all(b.intersection(NOISE_BOX) == 0 for b in boxes)
    assert all(0 <= b.x1 and b.x2 <= deg.width and b.y2 <= deg.height for b in boxes)


def test_crop_bias_detects_a_biased_scorer(bench: list) -> None:
    biased = crop_bias(FakeProber(crop_penalty=0.5), bench, n_probes=2, seed=0)
    unbiased = crop_bias(FakeProber(crop_penalty=0.0), bench, n_probes=2, seed=0)
    assert biased["by_kind"]["clean"]["mean_delta"] == pytest.approx(-0.5)
    assert biased["by_kind"]["clean"]["share_dropped"] == 1.0
    assert unbiased["by_kind"]["clean"]["mean_abs_delta"] == pytest.approx(0.0)


def test_occlusion_repair_recovers(bench: list) -> None:
    res = occlusion(FakeProber(), bench, seed=0)
    assert res["n_images"] == 3 and res["n_without_clean_twin"] == 0
    assert res["mean_recovery"] == pytest.approx(1.0, abs=0.05)
    assert res["mean_abs_mask_delta"] < res["mean_repair_delta"]


def test_run_and_write_analyses(bench: list, tmp_path: Path) -> None:
    res = run_analyses(FakeProber(fail_ids=("s2_dof",)), bench, n_probes=1, seed=0)
    assert res.localization["recall@0.5"] > 0 and res.localization["n_failed"] == 1
    assert res.crop_coverage["concentration"] > 1
    paths = write_analyses(res, tmp_path)
    assert "Localization" in paths["md"].read_text() and paths["json"].is_file()


def test_with_dummy_backend(bench: list) -> None:
    backends = pytest.importorskip("qprobe.backends")
    try:
        dummy = backends.create_backend("dummy")
    except (ImportError, KeyError) as exc:  # the backend is built in parallel by another area
        pytest.skip(f"dummy backend not available: {exc}")
    a = dummy.assess(load_rgb(bench[0].path), path=bench[0].path)
    assert isinstance(a, Assessment)
    res = run_analyses(dummy, bench[:6], n_probes=1, seed=0)
    assert res.n_images == 6 and res.crop_bias["by_kind"]
    assert res.localization["n_gt_boxes"] == 2


def test_unlabelled_rows_are_refused(clive_dir: Path) -> None:
    rows = load_dataset("clive", clive_dir)[:3]
    with pytest.raises(ValueError, match="qprobe-bench"):
        run_analyses(FakeProber(), rows)
