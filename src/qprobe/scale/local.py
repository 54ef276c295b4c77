"""Local execution: a pool of worker processes (or the driver itself for ``workers=0``).

Workers are started with the ``spawn`` method (no inherited locks or CUDA
state), create their backend once, and watch their parent so that a driver
killed with SIGKILL leaves no orphans. A worker that dies mid-task (segfault
in a decoder, out of memory) breaks the pool: the pool is rebuilt, the lost
chunks are retried one image at a time, and an image that kills a worker
twice gets an error row instead of stopping the batch.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator

from qprobe.errors import QProbeError
from qprobe.scale.config import BatchConfig
from qprobe.scale.inputs import WorkItem
from qprobe.scale.results import error_row
from qprobe.scale.worker import ChunkScorer, WorkerStartError, init_pool_worker, pool_score_chunk

Emit = Callable[[list[dict[str, Any]]], None]

CRASH_MESSAGE = "the worker process died while scoring this image (crash or out of memory)"


def chunked(items: list[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def scorer_kwargs(cfg: BatchConfig) -> dict[str, Any]:
    return {
        "backend": cfg.backend,
        "max_zooms": cfg.max_zooms,
        "seed": cfg.seed,
        "include_trajectory": cfg.include_trajectory,
        "max_pixels": cfg.max_pixels,
    }


def run_inprocess(items: list[WorkItem], cfg: BatchConfig, emit: Emit) -> None:
    scorer = ChunkScorer(**scorer_kwargs(cfg))
    for chunk in chunked(items, cfg.chunk_size):
        emit(scorer.score_chunk(chunk))


def run_local(items: list[WorkItem], cfg: BatchConfig, emit: Emit) -> None:
    """Score ``items`` and hand each finished chunk's rows to ``emit`` (in the driver)."""
    if cfg.workers == 0:
        run_inprocess(items, cfg, emit)
        return
    PoolRun(items, cfg, emit).run()


class PoolRun:
    """A process-pool run that survives worker deaths.

    When a worker dies, every task in flight is lost with it and nobody knows
    which image was the culprit, so the lost images are re-run alone, one task
    at a time: an image that kills a worker in isolation gets an error row.
    Several such deaths in a row with no success between them point at the
    workers, not the images: the run stops with an error and writes no crash
    rows for them, so a re-run retries those images.
    """

    MAX_CRASH_STREAK = 3

    def __init__(
        self,
        items: list[WorkItem],
        cfg: BatchConfig,
        emit: Emit,
        task: Callable[[list[WorkItem]], list[dict[str, Any]]] = pool_score_chunk,
    ) -> None:
        self.task = task
        self.cfg = cfg
        self.emit = emit
        self.queue: deque[list[WorkItem]] = deque(chunked(items, cfg.chunk_size))
        self.isolate: deque[WorkItem] = deque()
        self.crash_rows: list[dict[str, Any]] = []
        self.ctx = multiprocessing.get_context("spawn")
        self.initargs = (os.getpid(), cfg.threads_per_worker, scorer_kwargs(cfg))

    def run(self) -> None:
        while self.queue or self.isolate:
            self._run_pool()
        self._flush_crashes()

    def _flush_crashes(self) -> None:
        if self.crash_rows:
            rows, self.crash_rows = self.crash_rows, []
            self.emit(rows)

    def _crashed_alone(self, item: WorkItem) -> None:
        self.crash_rows.append(error_row(item, CRASH_MESSAGE, self.cfg.backend))
        if len(self.crash_rows) >= self.MAX_CRASH_STREAK:
            raise QProbeError(
                f"worker processes died on {len(self.crash_rows)} images in a row "
                f"({', '.join(r['id'] for r in self.crash_rows)}); this points at the workers (memory, "
                "a broken install), not at the images. Finished results are kept; re-run to resume."
            )

    def _run_pool(self) -> None:
        cfg = self.cfg
        pool = ProcessPoolExecutor(
            max_workers=cfg.workers, mp_context=self.ctx, initializer=init_pool_worker, initargs=self.initargs
        )
        inflight: dict[Future[list[dict[str, Any]]], list[WorkItem]] = {}
        broken = False
        try:
            while (self.queue or self.isolate or inflight) and not broken:
                if self.isolate:
                    if not inflight:
                        item = self.isolate.popleft()
                        inflight[pool.submit(self.task, [item])] = [item]
                else:
                    while self.queue and len(inflight) < 2 * cfg.workers:
                        chunk = self.queue.popleft()
                        inflight[pool.submit(self.task, chunk)] = chunk
                solo = len(inflight) == 1
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    chunk = inflight.pop(fut)
                    try:
                        rows = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if solo and len(chunk) == 1:
                            self._crashed_alone(chunk[0])
                        else:
                            self.isolate.extend(chunk)
                        continue
                    except WorkerStartError as exc:
                        raise QProbeError(f"backend {cfg.backend!r} could not start in a worker: {exc}") from None
                    self._flush_crashes()
                    self.emit(rows)
                if broken:
                    for chunk in inflight.values():
                        self.isolate.extend(chunk)
                    inflight.clear()
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
