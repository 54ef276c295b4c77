"""`qprobe batch`: exactly-once resumable output, bad files as error rows, worker crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from qprobe._fs import read_jsonl_tolerant
from qprobe.errors import QProbeError
from qprobe.manifest import ManifestRow, write_manifest
from qprobe.scale import BatchConfig, run_batch
from qprobe.scale.inputs import WorkItem, collect_items
from qprobe.scale.local import CRASH_MESSAGE, PoolRun
from qprobe.scale.results import ResultLog

from _helpers_product import alive, child_pids, crashy_score_chunk, qprobe_cmd, write_images
from test_io import write_bad_inputs


def _rows(path: Path) -> list[dict]:
    """Every line of ``path`` parsed strictly: a torn line fails the test."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "output ends with a torn line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def _cfg(src: Path, out: Path, **kw) -> BatchConfig:
    base = dict(input=str(src), out=str(out), backend="dummy", workers=0, progress=False)
    base.update(kw)
    return BatchConfig(**base)


def test_bad_inputs_become_error_rows_and_resume_skips(tmp_path):
    src = tmp_path / "in"
    expected = write_bad_inputs(src / "bad")
    write_images(src, 3)
    out = tmp_path / "r.jsonl"
    s = run_batch(_cfg(src, out))
    n_err = sum(v == "error" for v in expected.values())
    assert (s.total, s.scored, s.failed, s.skipped) == (len(expected) + 3, len(expected) + 3 - n_err, n_err, 0)
    rows = {r["id"]: r for r in _rows(out)}
    for name, outcome in expected.items():
        row = rows[f"bad/{name}"]
        if outcome == "error":
            assert row["status"] == "failed" and row["score"] is None
            assert name in row["error"]  # the message names the file
        else:
            assert row["status"] == "scored" and 1.0 <= row["score"] <= 5.0, row
            assert row["trajectory"]["schema_version"].startswith("qprobe.trajectory")
    assert rows["img000.jpg"]["path"] == str(src / "img000.jpg")
    again = run_batch(_cfg(src, out))
    assert (again.scored, again.failed, again.skipped) == (0, 0, len(rows))
    assert len(_rows(out)) == len(rows)
    retry = run_batch(_cfg(src, out, retry_failed=True))
    assert (retry.retried, retry.failed, retry.skipped) == (n_err, n_err, len(rows) - n_err)
    assert sorted(r["id"] for r in _rows(out)) == sorted(rows)


def test_pixel_limit_and_bomb_headers_give_error_rows(tmp_path):
    from test_fuzz_loader import _bombs

    src = tmp_path / "in"
    write_images(src, 1, h=64, w=80, prefix="small")
    write_images(src, 1, h=300, w=400, prefix="large")
    (src / "bomb.png").write_bytes(_bombs()["png"])
    out = tmp_path / "r.jsonl"
    run_batch(_cfg(src, out))
    rows = {r["id"]: r for r in _rows(out)}
    assert rows["bomb.png"]["status"] == "failed" and "above the limit" in rows["bomb.png"]["error"]
    assert rows["large000.jpg"]["status"] == rows["small000.jpg"]["status"] == "scored"
    out2 = tmp_path / "r2.jsonl"
    run_batch(_cfg(src, out2, max_pixels=50_000))
    rows = {r["id"]: r for r in _rows(out2)}
    assert rows["large000.jpg"]["status"] == "failed" and "above the limit" in rows["large000.jpg"]["error"]
    assert rows["small000.jpg"]["status"] == "scored"


def test_torn_last_line_is_repaired_on_resume(tmp_path):
    src = tmp_path / "in"
    write_images(src, 5)
    out = tmp_path / "r.jsonl"
    run_batch(_cfg(src, out))
    lines = out.read_bytes().splitlines(keepends=True)
    # Simulate a writer killed mid-line: the last row is cut in half.
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    s = run_batch(_cfg(src, out))
    assert (s.scored, s.skipped) == (1, 4)
    rows = _rows(out)
    assert sorted(r["id"] for r in rows) == [f"img{i:03d}.jpg" for i in range(5)]


def test_resume_with_another_scorer_moves_its_rows_aside(tmp_path):
    src = tmp_path / "in"
    write_images(src, 2)
    out = tmp_path / "r.jsonl"
    run_batch(_cfg(src, out))
    ident = json.loads((tmp_path / "r.identity.json").read_text())
    assert ident["scorer"] == "dummy" and "api_key" not in json.dumps(ident)
    assert run_batch(_cfg(src, out)).skipped == 2  # same scorer: resumed
    with pytest.warns(UserWarning, match="made by another"):
        s = run_batch(_cfg(src, out, max_zooms=1))  # other settings: every image again
    assert (s.scored, s.skipped) == (2, 0) and s.stale is not None
    assert len(_rows(Path(s.stale))) == 2 and len(_rows(out)) == 2  # the old rows are kept aside
    assert json.loads((tmp_path / "r.identity.json").read_text())["run"] == {"max_zooms": 1}
    (tmp_path / "r.identity.json").unlink()  # an output from before identities: reused, with a warning
    with pytest.warns(UserWarning, match="no record"):
        assert run_batch(_cfg(src, out)).skipped == 2


def test_foreign_or_duplicated_output_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"score": 3}\n')
    with pytest.raises(QProbeError, match="no string 'id'"):
        ResultLog(out)
    out.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(QProbeError, match="twice"):
        ResultLog(out)
    log = ResultLog(tmp_path / "ok.jsonl")
    with log:
        assert log.write({"id": "x", "status": "scored"})
        assert not log.write({"id": "x", "status": "scored"})  # the writer never duplicates an id
    assert len(_rows(tmp_path / "ok.jsonl")) == 1


def test_manifest_and_list_inputs(tmp_path):
    paths = write_images(tmp_path / "imgs", 3, h=64, w=80)
    rows = [
        ManifestRow(id=f"m{i}", path=f"imgs/{p.name}", dataset="toy", split="test", width=80, height=64, mos=2.0 + i)
        for i, p in enumerate(paths)
    ]
    write_manifest(tmp_path / "m.jsonl", rows)
    items = collect_items(tmp_path / "m.jsonl")
    assert [it.id for it in items] == ["m0", "m1", "m2"] and Path(items[0].path).exists()
    out = tmp_path / "r.jsonl"
    run_batch(_cfg(tmp_path / "m.jsonl", out))
    assert {r["id"]: r["mos"] for r in _rows(out)} == {"m0": 2.0, "m1": 3.0, "m2": 4.0}
    (tmp_path / "list.txt").write_text("# images\nimgs/img000.jpg\n\nimgs/img002.jpg\n")
    assert [it.id for it in collect_items(tmp_path / "list.txt")] == ["imgs/img000.jpg", "imgs/img002.jpg"]
    (tmp_path / "dup.txt").write_text("a.jpg\na.jpg\n")
    with pytest.raises(QProbeError, match="twice"):
        collect_items(tmp_path / "dup.txt")
    with pytest.raises(QProbeError, match="does not exist"):
        collect_items(tmp_path / "nope")


def test_worker_crash_is_isolated_to_its_image(tmp_path):
    paths = write_images(tmp_path, 6, h=64, w=80)
    # One pool run breaks on the first chunk, retries its three images alone, then finishes the rest.
    items = [WorkItem(id=("crash-" if i == 1 else "") + p.name, path=str(p)) for i, p in enumerate(paths)]
    rows: list[dict] = []
    PoolRun(items, _cfg(tmp_path, tmp_path / "x.jsonl", workers=1, chunk_size=3), rows.extend, crashy_score_chunk).run()
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == len(by_id) == 6
    assert by_id["crash-img001.jpg"]["status"] == "failed"
    assert by_id["crash-img001.jpg"]["error"] == CRASH_MESSAGE
    assert all(r["status"] == "scored" for k, r in by_id.items() if not k.startswith("crash"))


def test_workers_that_always_die_stop_the_run_without_error_rows(tmp_path):
    paths = write_images(tmp_path, 4, h=32, w=32)
    items = [WorkItem(id=f"crash-{p.name}", path=str(p)) for p in paths]
    rows: list[dict] = []
    with pytest.raises(QProbeError, match="points at the workers"):
        PoolRun(items, _cfg(tmp_path, tmp_path / "x.jsonl", workers=1), rows.extend, crashy_score_chunk).run()
    assert rows == []


def test_cli_unknown_backend_and_report(tmp_path):
    src = tmp_path / "in"
    write_images(src, 2, h=64, w=80)
    write_bad_inputs(src / "bad")
    bad = subprocess.run(qprobe_cmd("batch", str(src), "--out", str(tmp_path / "r.jsonl"), "--backend", "dumy"),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'dummy'" in bad.stderr
    assert not (tmp_path / "r.jsonl").exists()
    report = tmp_path / "r.html"
    res = subprocess.run(
        qprobe_cmd("batch", str(src), "--out", str(tmp_path / "r.jsonl"), "--backend", "dummy", "--workers", "0",
                   "--no-progress", "--report", str(report)),
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "scored 7, failed 3, skipped 0" in res.stdout and "images/s" in res.stdout
    page = report.read_text()
    assert page.count('<section class="card"') == 10 and "truncated" in page
    assert (tmp_path / "r.jsonl.config.yaml").exists()


def test_sigkill_at_any_moment_then_resume_is_exactly_once(tmp_path):
    src = tmp_path / "in"
    n = 30
    write_images(src, n, h=240, w=320)
    write_bad_inputs(src / "bad")
    total = n + 8
    out = tmp_path / "r.jsonl"
    cmd = qprobe_cmd("batch", str(src), "--out", str(out), "--backend", "dummy", "--workers", "2",
                     "--chunk-size", "1", "--no-progress")
    kills = 0
    for threshold in (2, 9):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= threshold:
                break
            time.sleep(0.01)
        workers = child_pids(proc.pid)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        # Orphaned workers notice their driver is gone and exit.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(alive(p) for p in workers), "worker processes outlived the killed driver"
        rows = read_jsonl_tolerant(out)
        assert len({r["id"] for r in rows}) == len(rows)  # never a duplicate, even mid-way
    assert kills >= 1, "the batch finished before it could be killed; use more images"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == total
    assert sum(r["status"] == "failed" for r in rows) == 3
