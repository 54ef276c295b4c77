"""`qprobe score`: JSON lines, per-file errors, overlays, exit codes."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_texture
from qprobe.cli.main import app
from qprobe.io import save_image
from test_io import write_bad_inputs

runner = CliRunner()
KEYS = {"path", "score", "defects", "probes", "backend", "version", "elapsed_s"}


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("score") / "good.png"
    save_image(p, make_texture(480, 720, seed=9))
    return p


def test_json_lines_format(good: Path) -> None:
    res = runner.invoke(app, ["score", str(good), str(good), "--backend", "dummy", "--json"])
    assert res.exit_code == 0, res.output
    rows = _lines(res.stdout)
    assert len(rows) == 2
    for row in rows:
        assert set(row) == KEYS
        assert row["path"] == str(good) and 1 <= row["score"] <= 5 and row["backend"] == "dummy"
        assert all(len(p) == 4 for p in row["probes"])


def test_every_bad_input_gives_a_clean_per_file_error(tmp_path: Path, good: Path) -> None:
    expected = write_bad_inputs(tmp_path / "bad")
    files = [str(tmp_path / "bad" / n) for n in expected] + [str(tmp_path / "missing.png"), str(good)]
    res = runner.invoke(app, ["score", *files, "--backend", "dummy", "--json"])
    assert res.exit_code == 1
    rows = {r["path"]: r for r in _lines(res.stdout)}
    assert len(rows) == len(files)  # every file got its line, none crashed the run
    for name, outcome in expected.items():
        row = rows[str(tmp_path / "bad" / name)]
        if outcome == "error":
            assert row["score"] is None and name in row["error"]
        else:
            assert row["score"] is not None and "error" not in row
    assert "not found" in rows[str(tmp_path / "missing.png")]["error"]
    assert rows[str(good)]["score"] is not None
    assert "error:" in res.stderr and "Traceback" not in res.output



def test_every_bad_input_gives_a_clean_per_file_error_with_the_classic_backend(tmp_path: Path, good: Path) -> None:
    """The same inputs through the default backend (random weights): its scan, zooms and head meet odd images too."""
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights

    expected = write_bad_inputs(tmp_path / "bad")
    w = make_random_weights(tmp_path / "w.pt")
    files = [str(tmp_path / "bad" / n) for n in expected] + [str(good)]
    res = runner.invoke(app, ["score", *files, "--weights", str(w), "--json", "--max-zooms", "2"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    rows = {r["path"]: r for r in _lines(res.stdout)}
    assert len(rows) == len(files)
    for name, outcome in expected.items():
        row = rows[str(tmp_path / "bad" / name)]
        assert (row["score"] is None and name in row["error"]) if outcome == "error" else 1 <= row["score"] <= 5


def test_text_output_overlay_and_trajectories(tmp_path: Path, good: Path) -> None:
    ov = tmp_path / "ov.png"
    traj = tmp_path / "t.jsonl"
    res = runner.invoke(app, ["score", str(good), "-b", "dummy", "--overlay", str(ov), "--trajectories", str(traj)])
    assert res.exit_code == 0, res.output
    assert "score" in res.stdout and ov.is_file() and ov.stat().st_size > 0
    from qprobe.types import read_trajectories

    assert len(list(read_trajectories(traj))) == 1


def test_folder_input_and_overlay_folder(tmp_path: Path) -> None:
    for i in range(2):
        save_image(tmp_path / "in" / f"im{i}.png", make_texture(200, 300, seed=i))
    res = runner.invoke(app, ["score", str(tmp_path / "in"), "-b", "dummy", "--overlay", str(tmp_path / "ov")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["im0.overlay.png", "im1.overlay.png"]




def test_one_image_with_an_overlay_folder(tmp_path: Path, good: Path) -> None:
    """``--overlay out/`` (or an existing folder) with one image writes into it, not a file named ``out``."""
    (tmp_path / "there").mkdir()
    for arg, expected in [(str(tmp_path / "out") + "/", tmp_path / "out" / "good.overlay.png"),
                          (str(tmp_path / "there"), tmp_path / "there" / "good.overlay.png"),
                          (str(tmp_path / "one.png"), tmp_path / "one.png")]:
        res = runner.invoke(app, ["score", str(good), "-b", "dummy", "--overlay", arg])
        assert res.exit_code == 0, res.output
        assert expected.is_file(), arg

def test_same_named_images_get_their_own_overlays(tmp_path: Path) -> None:
    """Cameras reuse names (``day1/IMG_0001.jpg``, ``day2/IMG_0001.jpg``): no overlay overwrites another."""
    shots = tmp_path / "shots"
    for i, rel in enumerate(["day1/IMG_0001.jpg", "day2/IMG_0001.jpg", "IMG_0001.png", "other.png"]):
        (shots / rel).parent.mkdir(parents=True, exist_ok=True)
        save_image(shots / rel, make_texture(96, 128, seed=i))
    res = runner.invoke(app, ["score", str(shots), "-b", "dummy", "--overlay", str(tmp_path / "ov")])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "ov").iterdir())
    assert names == ["IMG_0001_png.overlay.png", "day1__IMG_0001_jpg.overlay.png", "day2__IMG_0001_jpg.overlay.png",
                     "other.overlay.png"]

def test_unknown_backend_and_empty_folder(tmp_path: Path, good: Path) -> None:
    res = runner.invoke(app, ["score", str(good), "-b", "dumy"])
    assert res.exit_code == 2 and "did you mean 'dummy'" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["score", str(tmp_path / "empty"), "-b", "dummy"])
    assert res.exit_code == 2


def test_classic_with_weights_file(tmp_path: Path, good: Path) -> None:
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights

    w = make_random_weights(tmp_path / "w.pt")
    res = runner.invoke(app, ["score", str(good), "--weights", str(w), "--json", "--max-zooms", "1"])
    assert res.exit_code == 0, res.output
    (row,) = _lines(res.stdout)
    assert row["backend"] == "classic" and len(row["probes"]) == 1



def test_unwritable_outputs_lose_no_scores(tmp_path: Path, good: Path) -> None:
    """An overlay or report that cannot be written is an error line; every image is still scored and printed."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    files = [str(good), str(good)]
    res = runner.invoke(app, ["score", *files, "--backend", "dummy", "--json", "--overlay", str(blocker / "ov"),
                              "--report", str(blocker / "r.html")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert len(_lines(res.stdout)) == 2 and all(r["score"] is not None for r in _lines(res.stdout))
    assert res.stderr.count("cannot write the overlay") == 2 and "cannot write the report" in res.stderr
    res = runner.invoke(app, ["score", str(good), "--backend", "dummy", "--trajectories", str(blocker / "t.jsonl")])
    assert res.exit_code == 2 and "cannot append trajectories" in res.stderr and "score" not in res.stdout


def test_a_forced_probe_outside_the_image_is_reported(good: Path) -> None:
    """``--probe`` boxes are original pixels: one that misses the image is a warning, the answer still stands."""
    res = runner.invoke(app, ["score", str(good), "--backend", "dummy", "--json", "--probe", "5000,5000,6000,6000",
                              "--probe", "10,10,200,200"])
    assert res.exit_code == 0, res.output
    (row,) = _lines(res.stdout)
    x1, y1, x2, y2 = row["probes"][0]  # the probe that was made, with its context
    assert row["score"] is not None and x1 <= 10 and y1 <= 10 and x2 >= 200 and y2 >= 200
    assert res.stderr.count("--probe not made") == 1 and "does not overlap the 720x480 image" in res.stderr
    res = runner.invoke(app, ["score", str(good), "--backend", "dummy", "--max-zooms", "-1"])
    assert res.exit_code == 2

def test_the_model_loads_before_the_first_image(tmp_path: Path, good: Path, monkeypatch) -> None:
    """Weights load before any image is read: a missing file stops the run at once, with no image line."""
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights
    from qprobe.backends.classic.backend import ClassicBackend

    res = runner.invoke(app, ["score", str(tmp_path / "nope.png"), str(good), "--weights", str(tmp_path / "none.pt"),
                              "--json"])
    assert res.exit_code == 2 and not _lines(res.stdout)
    assert "weights not found" in res.stderr and "Traceback" not in res.output
    order: list[str] = []
    real_prepare, real_assess = ClassicBackend.prepare, ClassicBackend.assess
    monkeypatch.setattr(ClassicBackend, "prepare", lambda self: (order.append("prepare"), real_prepare(self))[1])
    monkeypatch.setattr(ClassicBackend, "assess", lambda self, *a, **k: (order.append("assess"), real_assess(self, *a, **k))[1])
    w = make_random_weights(tmp_path / "w.pt")
    res = runner.invoke(app, ["score", str(good), str(good), "--weights", str(w), "--json", "--max-zooms", "1"])
    assert res.exit_code == 0, res.output
    assert order == ["prepare", "assess", "assess"]


def test_classic_planner_option(tmp_path: Path, good: Path) -> None:
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights

    w = make_random_weights(tmp_path / "w.pt")
    for planner in ("blobs", "windows"):
        res = runner.invoke(app, ["score", str(good), "--weights", str(w), "--json", "--max-zooms", "2", "--planner", planner])
        assert res.exit_code == 0, res.output
        (row,) = _lines(res.stdout)
        assert len(row["probes"]) == 2
    res = runner.invoke(app, ["score", str(good), "--weights", str(w), "--planner", "grid"])
    assert res.exit_code != 0 and "planner" in res.output
    # --zooms-per-mp: a 0.35 MP image at 10 zooms per MP gets 3 zooms; --max-zooms is the floor
    res = runner.invoke(app, ["score", str(good), "--weights", str(w), "--json", "--max-zooms", "2", "--zooms-per-mp", "10"])
    assert res.exit_code == 0, res.output
    (row,) = _lines(res.stdout)
    assert len(row["probes"]) == 3


def test_classic_all_zooms_option(tmp_path: Path, good: Path) -> None:
    """Zooms where no found defect could be kept are not made, unless --all-zooms."""
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights

    from qprobe.backends.classic.weights import load_weights, save_weights

    w = load_weights(make_random_weights(tmp_path / "w.pt"))
    w.detector["agree_threshold"] = 1.0  # no scan block can agree: no zoom could change the answer
    save_weights(w, tmp_path / "strict.pt")
    args = ["score", str(good), "--weights", str(tmp_path / "strict.pt"), "--json", "--max-zooms", "2"]
    for extra, zooms in (([], 0), (["--all-zooms"], 2)):
        res = runner.invoke(app, args + extra)
        assert res.exit_code == 0, res.output
        (row,) = _lines(res.stdout)
        assert len(row["probes"]) == zooms and row["defects"] == []


def _classic_cli(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[dict], list[str]]:
    """Random classic weights, the settings each ``create_backend`` call gets, and ``qprobe score`` args on ``good``."""
    pytest.importorskip("torch")
    from _helpers_classic import make_random_weights

    import qprobe.backends

    weights = make_random_weights(tmp_path / "w.pt")
    made: list[dict] = []
    create = qprobe.backends.create_backend
    monkeypatch.setattr(qprobe.backends, "create_backend", lambda name, **kw: made.append(kw) or create(name, **kw))
    return weights, made, ["score", str(good), "--weights", str(weights), "--json"]


def test_classic_max_scan_share_option(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-scan-share reaches the backend; the assessment's extra says what the scan flagged and the shift."""
    import qprobe

    weights, made, args = _classic_cli(tmp_path, good, monkeypatch)
    args += ["--max-zooms", "2"]
    res = runner.invoke(app, args + ["--max-scan-share", "0.01"])
    assert res.exit_code == 0, res.output
    assert made[-1]["max_scan_share"] == 0.01
    assert runner.invoke(app, args).exit_code == 0 and "max_scan_share" not in made[-1]  # the default: unset
    res = runner.invoke(app, args + ["--max-scan-share", "0"])
    assert res.exit_code == 2 and "max_scan_share" in res.output

    extra = {s: qprobe.assess(good, weights=str(weights), max_scan_share=s).extra["classic"] for s in (1.0, 0.01)}
    assert extra[1.0]["scan_shift"] == 0.0 and extra[0.01]["scan_share"] == extra[1.0]["scan_share"] > 0.01
    assert extra[0.01]["scan_shift"] > 0.0


def test_classic_extra_zooms_option(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--extra-zooms reaches the backend (0: the stop-29 budget); the assessment counts the extra zooms made."""
    _, made, args = _classic_cli(tmp_path, good, monkeypatch)
    res = runner.invoke(app, args + ["--extra-zooms", "0"])
    assert res.exit_code == 0, res.output
    assert made[-1]["extra_zooms"] == 0
    (row,) = _lines(res.stdout)
    assert len(row["probes"]) <= 8
    assert runner.invoke(app, args).exit_code == 0 and "extra_zooms" not in made[-1]  # the default: unset
    assert runner.invoke(app, args + ["--extra-zooms", "-1"]).exit_code == 2


def test_classic_raw_boxes_option(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--raw-boxes turns the joining and the trimming of reported boxes off; the score does not change."""
    _, made, args = _classic_cli(tmp_path, good, monkeypatch)
    raw = runner.invoke(app, args + ["--raw-boxes"])
    assert raw.exit_code == 0, raw.output
    assert made[-1]["join_gap"] < 0 and made[-1]["trim_margin"] <= 0
    joined = runner.invoke(app, args)
    assert joined.exit_code == 0 and "join_gap" not in made[-1] and "trim_margin" not in made[-1]  # defaults: unset
    ((a,), (b,)) = _lines(raw.stdout), _lines(joined.stdout)
    assert a["score"] == b["score"] and len(a["defects"]) >= len(b["defects"])


def test_a_flag_the_backend_does_not_take_is_named(good: Path) -> None:
    res = runner.invoke(app, ["score", str(good), "--backend", "dummy", "--raw-boxes"])
    assert res.exit_code == 2 and "'dummy': it does not take --raw-boxes" in res.output
    res = runner.invoke(app, ["score", str(good), "--backend", "dummy", "--extra-zooms", "0"])
    assert res.exit_code == 2 and "it does not take --extra-zooms" in res.output
