"""The detector's operating point chosen on a validation benchmark (``--stage calibrate``)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from _helpers_classic import make_random_weights  # noqa: E402
from _helpers_eval import make_bench  # noqa: E402
from qprobe.train_classic.calibrate import (  # noqa: E402
    CalibrationConfig,
    calibrate,
    choose,
    fp_upper_bound,
    record,
    replay,
    replay_episode,
)


def _point(thr: float, recall: float, fp_bound: float, srcc: float = 0.5, fp: float = 0.0, cells: int = 8) -> dict:
    return {"threshold": thr, "min_cells": cells, "agree_threshold": 0.8, "recall": recall, "srcc": srcc,
            "fp_clean": fp, "fp_dof": fp, "fp_bound": fp_bound}


def test_fp_upper_bound() -> None:
    assert fp_upper_bound(0, 30) == pytest.approx(0.0999, abs=1e-3)  # the rule of three
    assert fp_upper_bound(0, 16) == pytest.approx(3.0 / 16, rel=0.01)
    assert fp_upper_bound(2, 100) > fp_upper_bound(1, 100) > fp_upper_bound(0, 100)
    assert fp_upper_bound(0, 0) == float("inf")


def test_choose_needs_the_bound_then_maximizes_recall() -> None:
    pts = [_point(0.9, 0.3, 0.05), _point(0.7, 0.5, 0.19), _point(0.8, 0.4, 0.08), _point(0.5, 0.6, 0.05, fp=0.2)]
    assert choose(pts, 0.1)["threshold"] == 0.8  # 0.7 is not shown safe, 0.5 exceeds the observed rate
    tie = [_point(0.8, 0.4, 0.05, srcc=0.6), _point(0.9, 0.4, 0.05, srcc=0.6), _point(0.7, 0.4, 0.05, srcc=0.5)]
    assert choose(tie, 0.1)["threshold"] == 0.9  # equal recall and SRCC: the stricter point
    assert choose([_point(0.7, 0.5, 0.19)], 0.1) is None


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from qprobe.backends import create_backend

    root = tmp_path_factory.mktemp("cal")
    rows = make_bench(root / "bench", n_sources=3)
    weights = make_random_weights(root / "classic.pt")
    backend = create_backend(
        "classic", weights=str(weights), max_zooms=2, extra_zooms=2, extra_zoom_prob=0.58, view_long_side=128,
        zoom_side=64, max_crop_side=128,
    )
    from qprobe.eval.datasets import load_dataset

    return root, load_dataset("qprobe-bench", root / "bench"), backend


def test_replay_equals_the_live_answer(setup) -> None:
    """Replaying a recorded episode gives exactly the live answer, at the model's own point and others.

    The recording holds every planned zoom; live, a zoom whose crop no scan
    block above the point's agreement threshold reaches is not made, nor an
    extra zoom (the last two here) whose crop holds no block at its
    probability, and replay leaves the same crops out (a point no block
    passes: no zoom at all).
    """
    from qprobe.backends.classic.detector import DetectorSettings

    _, rows, backend = setup
    episodes = record(backend, rows)
    assert all(len(e.crops) == 4 and e.base_zooms == 2 and e.extra_zoom_prob == 0.58 for e in episodes)
    m = backend.model
    probs = sorted(float(ep.prob.max()) for ep in episodes)
    middle = probs[len(probs) // 2] - 1e-6  # some crops confirmable, some not
    made, extra = [], []
    for settings, agree in [(m.detector, m.agree_threshold), (DetectorSettings(0.3, 1, 0.2), 0.2),
                            (DetectorSettings(0.3, 1, 0.2), middle), (DetectorSettings(0.6, 1, 0.2, grow=0.2), middle),
                            (DetectorSettings(0.3, 1, 0.2), 1.0)]:
        m.detector, m.agree_threshold = settings, agree
        live = [backend.assess(r.path) for r in rows]
        got = replay(m, episodes)
        hits = sum(any(d.bbox.iou(t.bbox) >= 0.3 for d in a.defects) for a, r in zip(live, rows) for t in r.defects)
        assert got["recall"] == hits / sum(len(r.defects) for r in rows)
        clean = [len(a.defects) for a, r in zip(live, rows) if r.extra["kind"] == "clean"]
        assert got["fp_clean"] == pytest.approx(sum(clean) / len(clean)) and got["negatives"] == 6
        for ep, a in zip(episodes, live):  # each episode: the same zooms, score and boxes as live
            ans, kept = replay_episode(m, ep)
            assert [box for _, box in kept] == a.probes
            assert ans.score == pytest.approx(a.score, abs=1e-9) and list(ans.defects) == a.defects
        made.append(sum(len(a.probes) for a in live))
        extra.append(sum(a.extra["classic"]["extra_zooms"] for a in live))
    assert made[-1] == 0 and 0 < made[2] < 4 * len(rows)
    assert 0 < extra[1] < 2 * len(rows)  # at agreement 0.2 every zoom is confirmable: the extra rule decides


def test_calibrate_keeps_the_point_unless_the_bound_allows(setup) -> None:
    _, rows, backend = setup
    episodes = record(backend, rows)
    m = backend.model
    before = (m.detector, m.agree_threshold)
    small = CalibrationConfig(thresholds=[0.9, 0.5], min_cells=[2], agree=[0.5])
    res = calibrate(m, episodes, small)  # 6 negative images cannot show <= 0.1 false boxes per image
    assert res["chosen"] is None and (m.detector, m.agree_threshold) == before and res["points"] == 4
    assert res["grow"]["chosen"] == before[0].grow and len(res["grow"]["sweep"]) == len(small.grow)
    loose = CalibrationConfig(thresholds=[0.9, 0.5], min_cells=[2], agree=[0.5], max_fp=100.0)
    res = calibrate(m, episodes, loose)
    best = res["chosen"]
    assert best is not None and m.detector.threshold == best["threshold"] and m.agree_threshold == best["agree_threshold"]
    assert best["recall"] == max(p["recall"] for p in res["sweep"])
    grows = res["grow"]["sweep"]  # box growth, chosen at that point by the same rule
    assert {g["grow"] for g in grows} == set(loose.grow) and m.detector.grow == res["grow"]["chosen"]
    assert max(g["recall"] for g in grows) == next(g["recall"] for g in grows if g["grow"] == m.detector.grow)
    assert all(g["threshold"] == best["threshold"] for g in grows)
    settled = (m.detector, m.agree_threshold)
    again = calibrate(m, episodes, loose)  # calibrated weights calibrate to themselves
    assert (m.detector, m.agree_threshold) == settled and again["chosen"]["threshold"] == best["threshold"]


def test_calibrate_stage_writes_the_point_into_the_weights(setup, tmp_path: Path) -> None:
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.backends.classic.weights import load_weights
    from qprobe.train_classic.run import TrainClassicConfig, run

    root, rows, _ = setup
    out = tmp_path / "run"
    (out / "cv").mkdir(parents=True)
    shutil.copyfile(root / "classic.pt", out / "classic.pt")
    shutil.copyfile(root / "classic.pt", out / "cv" / "fold0.pt")
    cfg = TrainClassicConfig(out=str(out), stages=["calibrate"], calibration_bench=str(root / "bench"), threads=1)
    cfg.calibration = CalibrationConfig(thresholds=[0.9, 0.5], min_cells=[2], agree=[0.5], max_fp=100.0)
    run(cfg, log=lambda line: None)
    saved = json.loads((out / "calibration.json").read_text())
    chosen = saved["chosen"]
    assert saved["points"] == 4 and len(saved["sweep"]) == 4 and saved["images"] == len(rows)
    for f in (out / "classic.pt", out / "cv" / "fold0.pt"):
        w = load_weights(f)
        assert w.detector["threshold"] == chosen["threshold"] and w.detector["agree_threshold"] == chosen["agree_threshold"]
        assert w.meta["calibration"]["chosen"] == chosen
        assert w.detector["grow"] == saved["grow"] and saved["grow_sweep"]
    assert ClassicModel.load(out / "classic.pt").agree_threshold == chosen["agree_threshold"]
    cfg.calibration = CalibrationConfig(thresholds=[0.9], min_cells=[2], agree=[0.5])  # nothing can be shown
    before = (out / "classic.pt").read_bytes()
    run(cfg, log=lambda line: None)
    assert (out / "classic.pt").read_bytes() == before and json.loads((out / "calibration.json").read_text())["chosen"] is None
