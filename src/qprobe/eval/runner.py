"""Run scorers over a dataset: resumable per-image predictions, then metrics.

Layout of ``out_dir``::

    predictions/<scorer>.jsonl   one line per image (appended + fsynced as it finishes)
    summary.{md,csv,json}        metrics with CIs, failure counts, versions, config, git revision
    scatter_<scorer>.png         prediction vs MOS
    config.yaml                  the resolved run configuration

Images already in a predictions file are skipped on a rerun (a killed run
resumes where it stopped), as long as the scorer is the same: each
predictions file has a ``<scorer>.identity.json`` (settings, weight digest)
and predictions of another identity are moved aside, not reused. Several scorers run side by side: each image is
decoded once and given to every scorer that still lacks it. Failures
(unreadable image, scorer error, unparsed model output) are recorded with
``score: null`` and an ``error`` — never replaced by a number — and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from qprobe._fs import JsonlAppender, read_jsonl_tolerant
from qprobe.errors import ImageLoadError
from qprobe.eval.metrics import MetricReport, compute_metrics
from qprobe.identity import check_identity, scorer_identity
from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow
from qprobe.types import Assessment

ScorerSpec = Any  # a name (str) or an object with ``name`` and ``assess``


@dataclass
class EvalConfig:
    """Settings of one evaluation run (written to ``config.yaml``)."""

    scorers: list[str] = field(
        default_factory=list, metadata={"help": "scorer names (baselines or backends)"}
    )
    dataset: str = field(default="", metadata={"help": "dataset spec NAME:PATH"})
    split: str | None = field(default=None, metadata={"help": "split name or split file"})
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N rows"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 = in-process)"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the CIs (0 = none)"})
    confidence: float = field(default=0.95, metadata={"help": "CI level"})
    seed: int = field(default=0, metadata={"help": "bootstrap and scorer seed"})
    retry_failed: bool = field(
        default=False, metadata={"help": "rescore images whose earlier attempt failed"}
    )


@dataclass
class ScorerResult:
    name: str
    report: MetricReport
    records: list[dict[str, Any]]
    breakdown: dict[str, MetricReport] = field(default_factory=dict)


@dataclass
class EvalResult:
    rows: list[ManifestRow]
    scorers: dict[str, ScorerResult]
    out_dir: Path | None = None
    elapsed_s: float = 0.0

    def metric(self, scorer: str, name: str) -> float | None:
        return self.scorers[scorer].report.value(name)


# -- scoring -----------------------------------------------------------------------


def _scorer_name(spec: ScorerSpec) -> str:
    return spec if isinstance(spec, str) else str(spec.name)


def _build(specs: Sequence[ScorerSpec]) -> dict[str, Any]:
    from qprobe.eval.scorers import create_scorer

    return {_scorer_name(s): create_scorer(s) if isinstance(s, str) else s for s in specs}


_WORKER_SCORERS: dict[str, Any] = {}


def _init_worker(specs: Sequence[ScorerSpec]) -> None:
    _WORKER_SCORERS.clear()
    _WORKER_SCORERS.update(_build(specs))


def _failed(name: str, path: str, error: str) -> Assessment:
    return Assessment(score=None, backend=name, path=path, error=error)


def score_image(
    scorers: dict[str, Any], path: str, names: Sequence[str], seed: int | None = None
) -> dict[str, dict[str, Any]]:
    """Decode ``path`` once and run each named scorer on it; errors become failed records."""
    out: dict[str, dict[str, Any]] = {}
    try:
        rgb = load_rgb(path)
    except ImageLoadError as exc:
        return {n: _record(_failed(n, path, f"image: {exc}")) for n in names}
    for n in names:
        t0 = time.perf_counter()
        try:
            a = scorers[n].assess(rgb, path=path, seed=seed)
        except Exception as exc:  # a scorer bug must not lose the other results
            a = _failed(n, path, f"{type(exc).__name__}: {exc}")
        if a.elapsed_s is None:
            a.elapsed_s = time.perf_counter() - t0
        out[n] = _record(a)
    return out


def _score_in_worker(path: str, names: Sequence[str], seed: int | None) -> dict[str, dict[str, Any]]:
    return score_image(_WORKER_SCORERS, path, names, seed)


def _record(a: Assessment) -> dict[str, Any]:
    rec = a.to_dict()
    rec["score"] = None if a.score is None else float(a.score)  # full precision: no rounding ties
    return rec


def _load_done(path: Path, retry_failed: bool) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl_tolerant(path, repair=True):
        if "id" in rec:
            done[str(rec["id"])] = rec
    if retry_failed:
        done = {k: v for k, v in done.items() if v.get("score") is not None}
    return done


def evaluate(
    scorer: ScorerSpec | Sequence[ScorerSpec],
    rows: Iterable[ManifestRow],
    out_dir: str | Path | None = None,
    *,
    workers: int = 1,
    limit: int | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    retry_failed: bool = False,
    progress: bool = True,
    write_report: bool = True,
    config: EvalConfig | None = None,
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
) -> EvalResult:
    """Score ``rows`` with one or more scorers and compute metrics.

    ``scorer`` is a name, a scorer object, or a list of them. With
    ``out_dir``, predictions are appended to ``predictions/<name>.jsonl``
    as they finish and images already there are skipped; the report files
    are written at the end. ``workers > 1`` scores images in that many
    processes (scorers given by name are built once per process).
    """
    t_start = time.perf_counter()
    specs = list(scorer) if isinstance(scorer, (list, tuple)) else [scorer]
    if not specs:
        raise ValueError("no scorer given")
    names = [_scorer_name(s) for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"scorer names must be distinct, got {names}")
    rows = list(rows)[:limit] if limit is not None else list(rows)
    if not rows:
        raise ValueError("no rows to evaluate")
    unlabelled = [r.id for r in rows if r.mos is None]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} row(s) have no MOS (first: {unlabelled[:3]}): evaluation needs labels"
        )
    if workers > 1:
        _check_picklable(specs)
    out = Path(out_dir) if out_dir is not None else None
    done: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    appenders: dict[str, JsonlAppender] = {}
    built: dict[str, Any] | None = None
    if out is not None:
        built = _build(specs)  # cheap: every scorer loads its model on first use
        for n in names:
            p = out / "predictions" / f"{n}.jsonl"
            check_identity(p, scorer_identity(built[n]))
            done[n] = _load_done(p, retry_failed)
            appenders[n] = JsonlAppender(p)
    todo = [(r, [n for n in names if r.id not in done[n]]) for r in rows]
    todo = [(r, ns) for r, ns in todo if ns]

    def accept(row: ManifestRow, results: dict[str, dict[str, Any]]) -> None:
        for n, rec in results.items():
            rec.update({"id": row.id, "mos": row.mos, "dataset": row.dataset, "split": row.split})
            done[n][row.id] = rec
            if n in appenders:
                appenders[n].write(rec)
            if on_record is not None:
                on_record(n, rec)

    try:
        with _progress(progress, len(todo), f"scoring {len(rows)} images with {', '.join(names)}") as advance:
            if workers <= 1 or len(todo) <= 1:
                scorers = built if built is not None else _build(specs)
                for row, ns in todo:
                    accept(row, score_image(scorers, row.path, ns, seed))
                    advance()
            else:
                ctx = get_context("spawn")
                with ProcessPoolExecutor(
                    workers, mp_context=ctx, initializer=_init_worker, initargs=(specs,)
                ) as ex:
                    futures: dict[Future, ManifestRow] = {
                        ex.submit(_score_in_worker, row.path, ns, seed): row for row, ns in todo
                    }
                    for fut in as_completed(futures):
                        accept(futures[fut], fut.result())
                        advance()
    finally:
        for a in appenders.values():
            a.close()

    result = EvalResult(rows=rows, scorers={}, out_dir=out)
    for n in names:
        records = [done[n][r.id] for r in rows]
        report = compute_metrics(
            [rec.get("score") for rec in records],
            [_mos(r) for r in rows],
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
        )
        result.scorers[n] = ScorerResult(
            n, report, records, breakdown(rows, records, n_boot=min(n_boot, 200), seed=seed)
        )
    result.elapsed_s = time.perf_counter() - t_start
    if out is not None and write_report:
        from qprobe.eval.report import write_report as _write

        cfg = config or EvalConfig(
            scorers=names,
            limit=limit,
            workers=workers,
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            retry_failed=retry_failed,
        )
        _write(result, out, cfg)
    return result


def _check_picklable(specs: Sequence[ScorerSpec]) -> None:
    import pickle

    for s in specs:
        if not isinstance(s, str):
            try:
                pickle.dumps(s)
            except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing
                raise ValueError(
                    f"scorer {_scorer_name(s)!r} cannot be sent to worker processes ({exc}); "
                    "pass it by name or use workers=1"
                ) from None


def _mos(row: ManifestRow) -> float:
    if row.mos is None:
        raise ValueError(f"row {row.id!r} has no MOS: evaluation needs labelled rows")
    return float(row.mos)


# -- per-group breakdown ----------------------------------------------------------


def groups_of(row: ManifestRow) -> list[str]:
    """Breakdown groups of a row: defect types, the dataset's distortion label, clean / dof."""
    groups = sorted({d.type for d in row.defects})
    dist = row.extra.get("distortion")
    if dist:
        groups.append(str(dist))
    kind = row.extra.get("kind")
    if row.dof or kind == "dof":
        groups.append("dof")
    elif kind == "clean" or (row.dataset == "qprobe-bench" and not row.defects):
        groups.append("clean")
    return groups


def breakdown(
    rows: Sequence[ManifestRow], records: Sequence[dict[str, Any]], n_boot: int = 200, seed: int = 0
) -> dict[str, MetricReport]:
    """Metrics per group (see :func:`groups_of`); empty when no row has a group."""
    members: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        for g in groups_of(r):
            members.setdefault(g, []).append(i)
    out: dict[str, MetricReport] = {}
    for g, idx in sorted(members.items()):
        pred = [records[i].get("score") for i in idx]
        mos = [_mos(rows[i]) for i in idx]
        rep = compute_metrics(pred, mos, metrics=("srcc", "plcc", "rmse"), n_boot=n_boot, seed=seed)
        ok = [p for p in pred if p is not None and math.isfinite(p)]
        rep.extra.update({"mean_score": sum(ok) / len(ok) if ok else None, "mean_mos": sum(mos) / len(mos)})
        out[g] = rep
    return out


# -- progress -----------------------------------------------------------------------


class _progress:
    """A rich progress bar (or nothing), used as ``with _progress(...) as advance:``."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total)
        return lambda: self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
