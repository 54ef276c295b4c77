"""The classic backend end to end (random-initialised weights for plumbing; shipped weights load)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _helpers_classic import make_random_weights  # noqa: E402
from conftest import make_texture  # noqa: E402
from qprobe.backends import create_backend  # noqa: E402
from qprobe.backends.classic.weights import default_weights_path, load_weights  # noqa: E402
from qprobe.errors import MissingWeightsError  # noqa: E402
from qprobe.types import Box  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_random_weights(tmp_path_factory.mktemp("w") / "classic.pt")


@pytest.fixture(scope="module")
def backend(weights: Path):
    # small views and crops keep the default test tier fast on a shared 2-core CPU
    return create_backend(
        "classic", weights=str(weights), max_zooms=3, view_long_side=256, zoom_side=96, max_crop_side=192
    )


def test_assess_end_to_end(backend) -> None:
    img = make_texture(450, 700, seed=4)
    a = backend.assess(img)
    assert a.ok and 1.0 <= a.score <= 5.0
    assert a.backend == "classic" and a.image_size == (700, 450)
    assert 1 <= len(a.probes) <= 3
    for box in a.probes + [d.bbox for d in a.defects]:
        assert 0 <= box.x1 < box.x2 <= 700 and 0 <= box.y1 < box.y2 <= 450
    sub = a.extra["classic"]
    assert sub["crops"] == len(a.probes) and 0.0 < sub["keep"] <= 1.0
    assert [s.kind for s in a.trajectory.steps][-1] == "answer"
    json.dumps(a.to_dict(include_trajectory=True))


def test_deterministic(backend) -> None:
    img = make_texture(300, 400, seed=7)
    a, b = backend.assess(img), backend.assess(img.copy())
    assert a.score == b.score and a.probes == b.probes and a.defects == b.defects


def test_zoom_budget_and_forced_probes(backend) -> None:
    img = make_texture(350, 500, seed=8)
    assert len(backend.assess(img, max_zooms=0).probes) == 0
    a = backend.assess(img, max_zooms=1, forced_probes=[Box(10, 10, 100, 100)])
    assert len(a.probes) == 2
    assert a.probes[0].contains(Box(10, 10, 100, 100))
    assert a.extra["classic"]["crops"] == 2  # the forced crop was looked at too


def test_scan_runs_beside_the_global_view_and_its_errors_reach_the_caller(backend, monkeypatch) -> None:
    """The scan runs in a background thread; its result is the plan, and its failure a clean per-image error."""
    import threading

    from qprobe.backends.classic import policy as policy_mod

    img = make_texture(320, 480, seed=9)
    expected = backend.assess(img)
    threads: list[str] = []
    real = policy_mod.block_features

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(policy_mod, "block_features", spy)
    again = backend.assess(img)
    assert threads and threads[0].startswith("qprobe-scan")
    assert again.score == expected.score and again.probes == expected.probes

    def broken(*args, **kwargs):
        raise ValueError("scan exploded")

    monkeypatch.setattr(policy_mod, "block_features", broken)
    failed = backend.assess(img)
    assert not failed.ok and "scan exploded" in failed.error

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(policy_mod, "block_features", exhausted)  # a huge image: its failure, not the batch's
    failed = backend.assess(img)
    assert not failed.ok and "ran out of memory" in failed.error and "x" in failed.error
    import qprobe.backends.base as base_mod

    monkeypatch.setattr(base_mod, "load_rgb", exhausted)
    failed = backend.assess(img)
    assert not failed.ok and "not enough memory to decode" in failed.error


def test_planned_crops_run_ahead_on_the_crop_workers_with_the_same_answer(backend, weights, monkeypatch) -> None:
    """Once the plan is made, its crops go through the head side by side; the episode's answer is unchanged."""
    from qprobe.agent.loop import run_episode
    from qprobe.backends.classic import policy as policy_mod

    if backend.model.defect_maps_async(np.zeros((64, 64, 3), np.uint8)) is None:
        pytest.skip("no crop workers (one thread or the torch engine)")
    img = make_texture(450, 700, seed=4)
    used: list[bool] = []
    real = policy_mod.ClassicPolicy._take_maps

    def spy(self, pixels):
        maps = real(self, pixels)
        used.append(maps is not None)
        return maps

    monkeypatch.setattr(policy_mod.ClassicPolicy, "_take_maps", spy)
    ahead = backend.assess(img)
    assert used and all(used)  # every crop was already on its way
    # a policy holding another copy of the image cannot know the environment's crops: it computes them
    used.clear()
    policy = backend.policy_for(backend.model, img.copy())
    other = run_episode(backend.make_env(3), policy, img)
    assert used and not any(used)
    used.clear()
    one_by_one = create_backend(
        "classic", weights=str(weights), max_zooms=3, view_long_side=256, zoom_side=96, max_crop_side=192,
        crop_workers=False,
    )
    inline = one_by_one.assess(img)
    assert used and not any(used)
    assert one_by_one.identity() == backend.identity()  # the setting does not change results
    for a in (other, inline):
        assert a.score == ahead.score and a.probes == ahead.probes and a.defects == ahead.defects


def test_concurrent_first_assessments_load_one_model(weights: Path, monkeypatch) -> None:
    """The HTTP service's first requests arrive together: they share one model instead of each loading one."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from qprobe.backends.classic.backend import ClassicBackend

    fresh = create_backend("classic", weights=str(weights), max_zooms=1, view_long_side=256, zoom_side=96,
                           max_crop_side=192)
    loads: list[int] = []
    real = ClassicBackend._load_model

    def slow_load(self):
        loads.append(threading.get_ident())
        time.sleep(0.2)  # every thread arrives while the first one is still loading
        return real(self)

    monkeypatch.setattr(ClassicBackend, "_load_model", slow_load)
    start = threading.Barrier(6)

    def first_use(_: int) -> int:
        start.wait()
        return id(fresh.model)

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(first_use, range(6)))
    assert len(loads) == 1 and len(ids) == 1
    assert fresh.assess(make_texture(200, 300, seed=2)).ok


def _assess_in_child(backend, img, out) -> None:
    a = backend.assess(img)
    out.put((a.score, [d.bbox.to_list() for d in a.defects], [p.to_list() for p in a.probes]))


def test_a_forked_child_scores_with_its_own_crop_workers(backend) -> None:
    """A process forked after the crop workers ran (their threads do not survive a fork) still scores."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    img = make_texture(450, 700, seed=5)
    a = backend.assess(img)  # the parent's workers exist now
    if backend.model._workers is None:
        pytest.skip("no crop workers (one thread or the torch engine)")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_assess_in_child, args=(backend, img, out))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung: it waited on the parent's crop workers")
    assert child.exitcode == 0
    score, defects, probes = out.get(timeout=10)
    assert score == a.score and defects == [d.bbox.to_list() for d in a.defects]
    assert probes == [p.to_list() for p in a.probes]


def test_zoom_budget_grows_with_the_image_area(weights: Path) -> None:
    default = create_backend("classic", weights=str(weights))  # 8 extra zooms on top of every budget
    assert default.zoom_budget(3840, 2160) == 16 and default.zoom_budget(5472, 3648) == 17  # half a zoom per MP
    assert default.zoom_budget(10240, 6400) == 40 and default.zoom_budget(12000, 9000) == 40  # capped at 32
    base = create_backend("classic", weights=str(weights), extra_zooms=0)
    assert base.zoom_budget(3840, 2160) == 8 and base.zoom_budget(12000, 9000) == 32
    assert create_backend("classic", weights=str(weights), zooms_per_mp=0, extra_zooms=0).zoom_budget(10000, 5000) == 8
    b = create_backend("classic", weights=str(weights), zooms_per_mp=1, zoom_cap=16, extra_zooms=0)
    assert b.zoom_budget(3840, 2160) == 8  # 8.3 MP: the base budget
    assert b.zoom_budget(1920, 1080) == 8  # never below it
    assert b.zoom_budget(5312, 2988) == 15  # 15.9 MP: one zoom per whole megapixel
    assert b.zoom_budget(10000, 5000) == 16  # capped
    assert create_backend("classic", max_zooms=20, zooms_per_mp=1, zoom_cap=16).zoom_budget(10000, 5000) == 28
    with pytest.raises(ValueError, match="zooms_per_mp"):
        create_backend("classic", zooms_per_mp=-1)
    with pytest.raises(ValueError, match="extra_zooms"):
        create_backend("classic", extra_zooms=-1)
    with pytest.raises(ValueError, match="extra_zoom_prob"):
        create_backend("classic", extra_zoom_prob=1.5)
    # the budget reaches the episode: a 0.3 MP image at 10 zooms per MP gets 3, not max_zooms (2)
    small = {"weights": str(weights), "view_long_side": 256, "zoom_side": 96, "max_crop_side": 192, "max_zooms": 2}
    img = make_texture(450, 700, seed=4)
    assert len(create_backend("classic", **small, zooms_per_mp=10).assess(img).probes) == 3
    assert len(create_backend("classic", **small, zooms_per_mp=0).assess(img).probes) == 2
    assert len(create_backend("classic", **small, zooms_per_mp=10).assess(img, max_zooms=1).probes) == 1


def test_a_callers_budget_above_the_backends_own_is_planned_for(weights: Path) -> None:
    """``assess(max_zooms=N)`` above the backend's budget (and the plan's minimum of 8) makes N zooms.

    Every planned zoom is made here (``confirmable_only=False``), so the count is the plan's length.
    """
    from qprobe.backends.classic.policy import PLAN_SIZE

    small = {"weights": str(weights), "view_long_side": 256, "zoom_side": 96, "max_crop_side": 192}
    be = create_backend("classic", **small, max_zooms=2, extra_zooms=0, zooms_per_mp=0, confirmable_only=False)
    img = make_texture(600, 900, seed=5)
    assert len(be.assess(img).probes) == 2
    want = PLAN_SIZE + 4
    a = be.assess(img, max_zooms=want)
    assert len(a.probes) == want and a.extra["classic"]["extra_zooms"] == 0
    assert len(be.assess(img, max_zooms=1).probes) == 1  # below its own budget it is cut short
    # with extra zooms, the zooms the caller adds come before them: the last ones still need a sure scan
    extra = create_backend("classic", **small, max_zooms=2, extra_zooms=3, zooms_per_mp=0, confirmable_only=False)
    pol = extra.policy_for(extra.model, img, max_zooms=want)
    assert (pol.max_zooms, pol.base_zooms, pol.extra_zooms) == (want, want - 3, 3)
    assert extra.policy_for(extra.model, img, max_zooms=1).max_zooms == 5  # never below its own


def test_tiny_and_odd_images(backend) -> None:
    for shape in [(1, 1, 3), (20, 300, 3), (300, 20, 3)]:
        a = backend.assess(np.full(shape, 120, np.uint8))
        assert a.ok, a.error


def test_weights_errors(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="not found"):
        load_weights(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(MissingWeightsError, match="not a qprobe.classic"):
        load_weights(bad)
    with pytest.raises(MissingWeightsError, match="is a folder; pass the weight file"):
        load_weights(tmp_path)
    (tmp_path / "text.pt").write_text("hello")  # torch's own message here is a bare "101"
    with pytest.raises(MissingWeightsError, match=r"\(\w+: .*\): not a complete weight file"):
        load_weights(tmp_path / "text.pt")
    (tmp_path / "cut.pt").write_bytes(default_weights_path().read_bytes()[:100_000])
    with pytest.raises(MissingWeightsError, match="truncated download or copy"):
        load_weights(tmp_path / "cut.pt")
    b = create_backend("classic", weights=str(tmp_path / "nope.pt"))
    with pytest.raises(MissingWeightsError):
        b.assess(make_texture(64, 64))


def test_weights_round_trip_fp16(weights: Path) -> None:
    w = load_weights(weights)
    assert w.net_config["classes"][0] == "clean"
    assert all(v.dtype == torch.float32 for v in w.state_dict.values() if v.is_floating_point())
    assert weights.stat().st_size < 8_000_000  # fp16 on disk


def test_shipped_weights_load_offline(monkeypatch) -> None:
    path = default_weights_path()
    assert path.is_file(), f"shipped weights missing: {path}"
    assert path.stat().st_size <= 30_000_000
    notice = path.parent / "NOTICE"
    assert notice.is_file() and "ImageNet" in notice.read_text()
    import socket

    def no_network(*a, **k):  # any connection attempt fails the test
        raise AssertionError("network access while loading weights")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    w = load_weights()
    assert len(w.net_config["classes"]) > 1 and w.scan.get("weights") is not None and len(w.fusion) == 1
    a = create_backend("classic", view_long_side=256, zoom_side=96, max_crop_side=192).assess(
        make_texture(300, 400, seed=2)
    )
    assert a.ok and 1.0 <= a.score <= 5.0


def test_global_score_is_the_five_crop_mean(weights: Path) -> None:
    from qprobe.backends.classic.runtime import ClassicModel

    m = ClassicModel.load(weights, score_crop=96)
    rng = np.random.default_rng(1)
    for shape in [(80, 200, 3), (150, 150, 3)]:  # a view as tall as a crop repeats corners
        v = rng.integers(0, 255, shape, dtype=np.uint8)
        h, w = shape[:2]
        ch, cw = min(96, h), min(96, w)
        crops = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
        ref = np.mean([m.score(np.ascontiguousarray(v[y : y + ch, x : x + cw])) for y, x in crops])
        assert m.score(v) == pytest.approx(ref, abs=1e-5)


def test_flip_scoring_is_the_mean_with_the_mirror(weights: Path) -> None:
    from qprobe.backends.classic.runtime import ClassicModel

    plain = ClassicModel.load(weights, score_crop=96)
    flipped = ClassicModel.load(weights, score_crop=96)
    flipped.score_flip = True
    v = np.random.default_rng(3).integers(0, 255, (120, 176, 3), dtype=np.uint8)  # (w - crop) even: symmetric crops
    mirror = np.ascontiguousarray(v[:, ::-1])
    assert flipped.score(v) == pytest.approx((plain.score(v) + plain.score(mirror)) / 2, abs=1e-5)
    assert flipped.score(v) == pytest.approx(flipped.score(mirror), abs=1e-5)  # mirror-invariant
