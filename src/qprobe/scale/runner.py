"""``run_batch``: resume state, dispatch to local or Ray workers, write, summarise."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from qprobe.scale.config import BatchConfig
from qprobe.scale.inputs import collect_items
from qprobe.scale.results import STATUS_FAILED, ResultLog


@dataclass
class BatchSummary:
    """Counts of one run: ``skipped`` images were already in the output file."""

    total: int
    scored: int
    failed: int
    skipped: int
    retried: int
    elapsed_s: float
    out: str
    stale: str | None = None  # where rows of another scorer were moved (see qprobe.identity)

    @property
    def images_per_s(self) -> float:
        n = self.scored + self.failed
        return n / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.images_per_s, 3)
        return out

    def line(self) -> str:
        return (
            f"scored {self.scored}, failed {self.failed}, skipped {self.skipped} (already in {self.out}) "
            f"of {self.total} in {self.elapsed_s:.1f} s: {self.images_per_s:.2f} images/s"
        )


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.2f} img/s, {task.fields[failed]} failed"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task("scoring", total=total, rate=0.0, failed=0)
            self._bar.start()

    def update(self, done: int, failed: int, rate: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, failed=failed, rate=rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_batch(cfg: BatchConfig, on_row: Callable[[dict[str, Any]], None] | None = None) -> BatchSummary:
    """Score every pending image of ``cfg.input`` into ``cfg.out``; see :mod:`qprobe.scale`."""
    from qprobe.backends import BACKENDS, create_backend
    from qprobe.identity import check_identity, scorer_identity

    BACKENDS.entry(cfg.backend)  # an unknown name fails here, with suggestions, before any work starts
    items = collect_items(cfg.input, recursive=cfg.recursive)
    # rows of another scorer (new weights, other settings) are moved aside, not resumed; backends load lazily
    ident = scorer_identity(create_backend(cfg.backend), max_zooms=cfg.max_zooms, seed=cfg.seed, max_pixels=cfg.max_pixels)
    stale = check_identity(cfg.out, ident)
    log = ResultLog(cfg.out, retry_failed=cfg.retry_failed)
    pending = log.pending(items)
    skipped = len(items) - len(pending)
    counts = {"scored": 0, "failed": 0}
    progress = _Progress(cfg.progress, len(pending))
    t0 = time.perf_counter()

    def emit(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if not log.write(row):
                continue
            counts["failed" if row.get("status") == STATUS_FAILED else "scored"] += 1
            if on_row is not None:
                on_row(row)
        n = counts["scored"] + counts["failed"]
        progress.update(n, counts["failed"], n / max(time.perf_counter() - t0, 1e-9))

    try:
        with log:
            if cfg.ray:
                from qprobe.scale.ray_runner import run_ray

                run_ray(pending, cfg, emit)
            else:
                from qprobe.scale.local import run_local

                run_local(pending, cfg, emit)
    finally:
        progress.close()
    return BatchSummary(
        total=len(items),
        scored=counts["scored"],
        failed=counts["failed"],
        skipped=skipped,
        retried=log.retried,
        elapsed_s=time.perf_counter() - t0,
        out=str(log.path),
        stale=None if stale is None else str(stale),
    )
