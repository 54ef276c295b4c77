"""Runner, report files, resume, failure counting and the ``qprobe eval`` CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from _helpers_eval import FakeProber, make_bench
from typer.testing import CliRunner

from qprobe._fs import read_jsonl_tolerant
from qprobe.eval.datasets import load_dataset
from qprobe.eval.runner import evaluate, groups_of
from qprobe.eval.scorers import create_scorer, list_scorers

N = 6


@pytest.fixture(scope="module")
def clive_rows(clive_dir: Path) -> list:
    return load_dataset("clive", clive_dir)[:N]


def test_create_scorer_names() -> None:
    assert create_scorer("niqe").name == "niqe"
    assert {"niqe", "brisque", "piqe"} <= set(list_scorers())
    with pytest.raises(KeyError, match="unknown"):
        create_scorer("no-such-scorer")


def test_evaluate_baselines_side_by_side_and_resume(clive_rows: list, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = evaluate(["niqe", "brisque", "piqe"], clive_rows, out, n_boot=50, progress=False)
    for n in ("niqe", "brisque", "piqe"):
        rep = res.scorers[n].report
        assert rep.n_ok == N and rep.n_failed == 0 and rep.value("srcc") is not None
        lines = read_jsonl_tolerant(out / "predictions" / f"{n}.jsonl")
        assert [r["id"] for r in lines] == [r.id for r in clive_rows]
        assert all(r["score"] is not None and "raw" in r["extra"] for r in lines)
    for f in ("summary.md", "summary.csv", "summary.json", "config.yaml", "scatter_niqe.png"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == N and summary["versions"]["numpy"] and "commit" in summary["git"]
    assert summary["config"]["scorers"] == ["niqe", "brisque", "piqe"]
    md = (out / "summary.md").read_text()
    assert f"| niqe | {N} | 0 |" in md
    # a killed run left a torn line: resume drops it and scores only what is missing
    pred = out / "predictions" / "niqe.jsonl"
    kept = pred.read_text().splitlines(keepends=True)[:3]
    pred.write_text("".join(kept) + '{"id": "torn')
    seen: list[str] = []
    res2 = evaluate(
        ["niqe", "brisque", "piqe"],
        clive_rows,
        out,
        n_boot=50,
        progress=False,
        on_record=lambda n, rec: seen.append(f"{n}:{rec['id']}"),
    )
    assert seen == [f"niqe:{r.id}" for r in clive_rows[3:]]
    assert res2.metric("niqe", "srcc") == pytest.approx(res.metric("niqe", "srcc"))
    assert len(read_jsonl_tolerant(pred)) == N


def test_failures_counted_never_substituted(clive_rows: list, tmp_path: Path) -> None:
    rows = [copy.copy(r) for r in clive_rows[:6]]  # the fixture's rows are shared with later tests
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    rows[2].path = str(broken)
    res = evaluate("piqe", rows, tmp_path / "out", n_boot=0, progress=False)
    rep = res.scorers["piqe"].report
    assert (rep.n_total, rep.n_ok, rep.n_failed) == (6, 5, 1)
    rec = res.scorers["piqe"].records[2]
    assert rec["score"] is None and rec["error"].startswith("image:")
    assert "Failures" in (tmp_path / "out" / "summary.md").read_text()
    # a retry still fails and is still not substituted
    res2 = evaluate("piqe", rows, tmp_path / "out", n_boot=0, progress=False, retry_failed=True)
    assert res2.scorers["piqe"].report.n_failed == 1


def test_workers_give_same_predictions(clive_rows: list, tmp_path: Path) -> None:
    rows = clive_rows[:4]
    a = evaluate("piqe", rows, None, n_boot=0, progress=False)
    b = evaluate("piqe", rows, tmp_path / "w2", n_boot=0, progress=False, workers=2)
    assert [r["score"] for r in a.scorers["piqe"].records] == [r["score"] for r in b.scorers["piqe"].records]


def test_bench_breakdown_with_probing_scorer(tmp_path: Path) -> None:
    make_bench(tmp_path / "bench")
    rows = load_dataset("qprobe-bench", tmp_path / "bench")
    assert (
        groups_of(rows[0]) == ["clean"] and groups_of(rows[1]) == ["noise"] and groups_of(rows[2]) == ["dof"]
    )
    res = evaluate(FakeProber(fail_ids=("s0_dof",)), rows, tmp_path / "out", n_boot=20, progress=False)
    s = res.scorers["fake"]
    assert set(s.breakdown) == {"clean", "noise", "dof"}
    assert s.breakdown["dof"].n_failed == 1 and s.report.n_failed == 1
    assert s.breakdown["noise"].extra["mean_score"] < s.breakdown["clean"].extra["mean_score"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Breakdown by degradation" in md and "| noise | 3 | 0 |" in md
    rec = s.records[1]
    assert rec["defects"] and rec["probes"]


def test_cli_eval_split_and_analyze(clive_dir: Path, tmp_path: Path) -> None:
    from qprobe.cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(
        app,
        [
            "eval",
            "--scorer",
            "piqe",
            "--scorer",
            "niqe",
            "--dataset",
            f"clive:{clive_dir}",
            "--out",
            str(out),
            "--limit",
            "5",
            "--n-boot",
            "20",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "| piqe | 5 | 0 |" in r.output and (out / "predictions" / "niqe.jsonl").is_file()
    bad = runner.invoke(app, ["eval", "--scorer", "piqe", "--dataset", "clive", "--out", str(out)])
    assert bad.exit_code == 2 and "NAME:PATH" in bad.output
    missing = runner.invoke(app, ["eval", "--scorer", "piqe"])
    assert missing.exit_code == 2 and "required" in missing.output
    sp = runner.invoke(
        app,
        ["eval", "split", "--dataset", f"clive:{clive_dir}", "--out", str(tmp_path / "sp"), "--seed", "3"],
    )
    assert sp.exit_code == 0, sp.output
    n = {k: len((tmp_path / "sp" / f"{k}.txt").read_text().split()) for k in ("train", "val", "test")}
    assert sum(n.values()) > 820 and n["train"] > n["test"]  # (+ header comment words)
    make_bench(tmp_path / "bench", n_sources=2)
    an = runner.invoke(
        app,
        [
            "eval",
            "analyze",
            "--scorer",
            "piqe",
            "--dataset",
            f"qprobe-bench:{tmp_path / 'bench'}",
            "--out",
            str(tmp_path / "an"),
        ],
    )
    assert an.exit_code == 0, an.output
    assert json.loads((tmp_path / "an" / "analyses.json").read_text())["n_images"] == 6


@pytest.mark.slow
def test_full_clive_baselines(clive_dir: Path, tmp_path: Path) -> None:
    """The README table run: 820 images, three baselines, two workers."""
    rows = load_dataset("clive", clive_dir)
    res = evaluate(["niqe", "brisque", "piqe"], rows, tmp_path / "full", workers=2, progress=False)
    for n in ("niqe", "brisque", "piqe"):
        assert res.scorers[n].report.n_ok == 820
    # the README table's values, within their 95 % bootstrap intervals (the LIVE-trained BRISQUE SVR
    # reaches 0.42 on CLIVE, not the > 0.5 this test used to demand and never got)
    for name, (lo, hi) in {"niqe": (0.131, 0.261), "brisque": (0.363, 0.478), "piqe": (0.042, 0.185)}.items():
        assert lo <= res.metric(name, "srcc") <= hi, name


def test_cli_config_recipe_and_ls(clive_dir: Path, tmp_path: Path) -> None:
    from qprobe.cli.main import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"scorers: [piqe]\ndataset: clive:{clive_dir}\nlimit: 50\nn_boot: 10\n")
    runner = CliRunner()
    r = runner.invoke(
        app, ["eval", "--config", str(recipe), "--limit", "3", "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    assert "| piqe | 3 | 0 |" in r.output  # the flag overrode the recipe's limit
    assert "limit: 3" in (tmp_path / "o" / "config.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("scorer: [piqe]\n")
    r = runner.invoke(app, ["eval", "--config", str(bad), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "unknown option" in r.output
    for kind, name in (("datasets", "koniq10k"), ("metrics", "plcc_fit"), ("baselines", "piqe")):
        r = runner.invoke(app, ["ls", kind])
        assert r.exit_code == 0 and name in r.output.split()


def test_unlabelled_rows_and_unpicklable_scorers_fail_early(clive_rows: list) -> None:
    import copy

    rows = copy.deepcopy(clive_rows[:2])
    rows[1].mos = None
    with pytest.raises(ValueError, match="no MOS"):
        evaluate("piqe", rows, None, progress=False)

    class Local(FakeProber):
        def __init__(self) -> None:
            super().__init__()
            self.hook = lambda: None  # a lambda cannot be pickled

    with pytest.raises(ValueError, match="by name"):
        evaluate(Local(), clive_rows[:2], None, workers=2, progress=False)


class _Versioned(FakeProber):
    """A scorer whose identity (e.g. its weight digest) can change under the same name."""

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.calls = 0

    def identity(self) -> dict:
        return {"scorer": self.name, "weights": self.version}

    def assess(self, image, **kw):  # type: ignore[override]
        self.calls += 1
        return super().assess(image, **kw)


def test_cached_predictions_are_reused_only_by_the_same_scorer(clive_rows: list, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _Versioned("a")
    evaluate(first, clive_rows, out, n_boot=0, progress=False, write_report=False)
    assert first.calls == N
    assert json.loads((out / "predictions" / "fake.identity.json").read_text()) == {"scorer": "fake", "weights": "a"}
    same = _Versioned("a")
    evaluate(same, clive_rows, out, n_boot=0, progress=False, write_report=False)
    assert same.calls == 0  # resumed: nothing left to score
    other = _Versioned("b")  # retrained weights under the same name
    with pytest.warns(UserWarning, match="another fake"):
        res = evaluate(other, clive_rows, out, n_boot=0, progress=False, write_report=False)
    assert other.calls == N and res.scorers["fake"].report.n_ok == N
    stale = list((out / "predictions").glob("fake.stale-*.jsonl"))
    assert len(stale) == 1 and len(read_jsonl_tolerant(stale[0])) == N  # the old results are kept aside
    assert json.loads((out / "predictions" / "fake.identity.json").read_text())["weights"] == "b"


def test_predictions_without_identity_are_reused_with_a_warning(clive_rows: list, tmp_path: Path) -> None:
    out = tmp_path / "run"
    evaluate(_Versioned("a"), clive_rows, out, n_boot=0, progress=False, write_report=False)
    (out / "predictions" / "fake.identity.json").unlink()  # as written before identities existed
    again = _Versioned("b")
    with pytest.warns(UserWarning, match="no record of the scorer"):
        evaluate(again, clive_rows, out, n_boot=0, progress=False, write_report=False)
    assert again.calls == 0 and not (out / "predictions" / "fake.identity.json").exists()


def test_identities_of_builtin_scorers() -> None:
    from qprobe.identity import scorer_identity

    niqe = scorer_identity(create_scorer("niqe"))
    assert niqe["scorer"] == "niqe" and niqe["settings"]["patch_size"] == 96
    a = scorer_identity(create_scorer("dummy"))
    assert a["scorer"] == "dummy" and a == scorer_identity(create_scorer("dummy"))
    remote = scorer_identity(create_scorer("openai", model="qwen", api_key="sk-do-not-store", base_url="http://h:8000/v1"))
    assert remote["settings"]["model"] == "qwen" and remote["settings"]["base_url"] == "http://h:8000/v1"
    assert "sk-do-not-store" not in json.dumps(remote)  # identities are written to disk: never a secret
