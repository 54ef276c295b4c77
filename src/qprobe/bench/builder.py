"""``build(cfg)``: the resumable, deterministic, parallel benchmark build.

Layout of ``cfg.out``::

    images/<id>.png        the benchmark images (clean, dof, degraded)
    manifest.jsonl         one row per image (qprobe.manifest schema, dataset "qprobe-bench")
    degradations.jsonl     one line per injected degradation / DoF rendering
    pairs.jsonl            within-photo ranking pairs with preference probabilities
    skipped.jsonl          photos that could not be used and images that could not be made, with the reason
    config.yaml            the resolved configuration
    build.log              what happened, run after run
    .state/items.jsonl     finished items (the resume journal)

Every image is written atomically before its record is appended (fsynced) to
the journal, so a killed build leaves no half-written file and a re-run skips
exactly the finished items. The final files are rewritten from the journal in
id order, so their bytes do not depend on worker scheduling or on how many
runs it took.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qprobe._fs import JsonlAppender, atomic_write_text, read_jsonl_tolerant
from qprobe.bench.config import BenchConfig
from qprobe.bench.items import list_photos, plan_items
from qprobe.bench.pairs import make_pairs
from qprobe.bench.render import PhotoResult, PhotoTask, render_photo, resolve_degradations
from qprobe.config import write_resolved
from qprobe.errors import ConfigError
from qprobe.manifest import ManifestRow, write_manifest

_LOG = logging.getLogger("qprobe.bench")

STATE = ".state/items.jsonl"


@dataclass
class BuildSummary:
    out: Path
    photos: int = 0
    built: int = 0
    reused: int = 0
    rows: int = 0
    pairs: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)
    skipped_items: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason): e.g. nothing visible
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.jsonl"

    @property
    def images_per_s(self) -> float:
        return self.built / self.seconds if self.seconds > 0 else 0.0

    def files(self) -> dict[str, Path]:
        names = (
            "manifest.jsonl",
            "degradations.jsonl",
            "pairs.jsonl",
            "skipped.jsonl",
            "config.yaml",
            "build.log",
        )
        return {"images": self.out / "images", **{n: self.out / n for n in names}}


class _Log:
    """Echo to the caller and append to ``build.log`` (with a UTC time stamp)."""

    def __init__(self, path: Path, echo: Callable[[str], None]) -> None:
        self.path = path
        self.echo = echo
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str) -> None:
        self.echo(line)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")


def _clean_stale_temps(out: Path) -> int:
    n = 0
    for folder in (out, out / "images", out / ".state"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                n += 1
    return n


def _load_journal(out: Path, cfg: BenchConfig, recipe: str) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl_tolerant(out / STATE, repair=True):
        found = (rec.get("recipe"), rec.get("seed"), rec.get("storage"))
        if found != (recipe, cfg.seed, cfg.storage()):
            # a folder built before the visibility rule carries the recipe hash without it
            hint = (
                "; it was built without the visibility rule: add --min-visible 0 to resume it"
                if found[0] == cfg.draw_hash() and cfg.min_visible > 0
                else ""
            )
            raise ConfigError(
                f"{out} already holds a benchmark built with another recipe, seed or image format "
                f"(found recipe/seed/format {found}, now {(recipe, cfg.seed, cfg.storage())}); "
                f"use a new --out folder, or delete this one to rebuild{hint}"
            )
        if (out / rec["row"]["path"]).is_file():
            done[rec["id"]] = rec
    return done


def _run_tasks(
    tasks: list[PhotoTask], workers: int
) -> Iterable[tuple[PhotoTask, PhotoResult | BaseException]]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, render_photo(task)
        return
    # fork: workers start instantly and need no importable __main__ (scripts run
    # from stdin or notebooks work); the work is numpy/Pillow only, no threads of
    # ours are running. Elsewhere (macOS, Windows) spawn is the safe default.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        futures: dict[Future[PhotoResult], PhotoTask] = {pool.submit(render_photo, t): t for t in tasks}
        try:
            for fut in as_completed(futures):
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:  # a worker died (e.g. out of memory)
                    yield futures[fut], exc
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def build(cfg: BenchConfig, echo: Callable[[str], None] | None = None) -> BuildSummary:
    """Build (or resume) the benchmark described by ``cfg``; see the module docstring."""
    t0 = time.perf_counter()
    cfg.validate()
    if not cfg.photos or not cfg.out:
        raise ConfigError("both photos (input folder) and out (output folder) must be set")
    try:
        resolve_degradations(cfg.degradations)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(out / "build.log", echo or _LOG.info)
    recipe = cfg.recipe_hash()
    stale = _clean_stale_temps(out)
    if stale:
        log(f"removed {stale} half-written temporary file(s) of an interrupted run")
    done = _load_journal(out, cfg, recipe)
    write_resolved(cfg, out / "config.yaml")
    try:
        photos = list_photos(cfg.photos)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    summary = BuildSummary(out=out, photos=len(photos))
    planned: list[str] = []
    tasks: list[PhotoTask] = []
    for photo in photos:
        items = plan_items(photo.id, cfg.variants, cfg.clean, cfg.dof_per_photo)
        planned += [i.id for i in items]
        missing = tuple(i for i in items if i.id not in done)
        summary.reused += len(items) - len(missing)
        if missing:
            tasks.append(PhotoTask(photo, missing, cfg, recipe))
    tasks.sort(key=lambda t: (-t.photo.path.stat().st_size, t.photo.id))  # big photos first
    log(
        f"building {sum(len(t.items) for t in tasks)} image(s) from {len(tasks)} photo(s) "
        f"({summary.reused} already done) with {cfg.workers} worker(s) -> {out}"
    )
    skipped: dict[str, str] = {}
    with JsonlAppender(out / STATE) as journal:
        for task, res in _run_tasks(tasks, cfg.workers):
            if isinstance(res, BaseException):
                msg = f"{task.photo.rel}: worker failed ({type(res).__name__}: {res}); re-run to resume"
                summary.errors.append(msg)
                log(f"error {msg}")
                continue
            for rec in res.records:
                journal.write(rec)
                done[rec["id"]] = rec
            summary.built += len(res.records)
            if res.skipped is not None:
                skipped[task.photo.rel] = res.skipped
                log(f"skip {task.photo.rel}: {res.skipped}")
            for item_id, reason in res.skipped_items:
                summary.skipped_items.append((item_id, reason))
                log(f"skip {item_id}: {reason}")
            for err in res.errors:
                summary.errors.append(err)
                log(f"error {err}")
            if res.records:
                log(f"built {task.photo.rel}: {len(res.records)} image(s) in {res.seconds:.1f} s")
    summary.skipped = sorted(skipped.items())
    summary.skipped_items.sort()
    _write_outputs(out, cfg, [done[i] for i in sorted(planned) if i in done], summary)
    summary.seconds = time.perf_counter() - t0
    log(
        f"done: {summary.rows} image(s) in the manifest ({summary.built} new, {summary.reused} reused), "
        f"{len(summary.skipped)} photo(s) and {len(summary.skipped_items)} image(s) skipped, "
        f"{len(summary.errors)} error(s), {summary.seconds:.1f} s"
    )
    return summary


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)


def _write_outputs(out: Path, cfg: BenchConfig, records: list[dict[str, Any]], summary: BuildSummary) -> None:
    rows = [ManifestRow.from_dict(r["row"], where=f"record {r['id']}") for r in records]
    write_manifest(out / "manifest.jsonl", rows)
    atomic_write_text(out / "degradations.jsonl", _jsonl(e for r in records for e in r["log"]))
    pairs = make_pairs(rows, min_gap=cfg.pair_min_gap)
    atomic_write_text(out / "pairs.jsonl", _jsonl(pairs))
    atomic_write_text(
        out / "skipped.jsonl",
        _jsonl(
            [{"photo": p, "reason": r} for p, r in summary.skipped]
            + [{"item": i, "reason": r} for i, r in summary.skipped_items]
        ),
    )
    summary.rows = len(rows)
    summary.pairs = len(pairs)
    kinds: dict[str, int] = {}
    for r in rows:
        kind = str(r.extra.get("kind", "?"))
        kinds[kind] = kinds.get(kind, 0) + 1
    summary.by_kind = dict(sorted(kinds.items()))


__all__ = ["BenchConfig", "BuildSummary", "build"]
