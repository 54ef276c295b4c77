"""What runs inside a worker: one backend per process, chunks of items in, rows out.

The same :class:`ChunkScorer` serves the local process pool, the in-process
path (``workers=0``) and the Ray actors. It never raises for an image: a
failure becomes an error row, so one bad file never aborts a batch.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from qprobe.errors import QProbeError
from qprobe.scale.inputs import WorkItem
from qprobe.scale.results import assessment_row, error_row

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Cap math-library threads in this process (call before torch/numpy spin up pools)."""
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


class ChunkScorer:
    """Creates the backend once and scores chunks of work items."""

    def __init__(
        self,
        backend: str,
        max_zooms: int | None = None,
        seed: int | None = None,
        include_trajectory: bool = True,
        max_pixels: int | None = None,
    ) -> None:
        from qprobe.backends import create_backend

        self.backend_name = backend
        self.backend = create_backend(backend)
        self.max_zooms = max_zooms
        self.seed = seed
        self.include_trajectory = include_trajectory
        self.max_pixels = max_pixels

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.max_zooms is not None:
            kw["max_zooms"] = self.max_zooms
        if self.seed is not None:
            kw["seed"] = self.seed
        return kw

    def score_one(self, item: WorkItem) -> dict[str, Any]:
        try:
            t0 = time.perf_counter()
            assessment = self.backend.assess(self._image(item), path=item.path, **self._kwargs())
            if assessment.elapsed_s is None:
                assessment.elapsed_s = time.perf_counter() - t0
            return assessment_row(item, assessment, self.include_trajectory)
        except QProbeError as exc:  # e.g. ImageLoadError: its message names the file and the reason
            return error_row(item, str(exc), self.backend_name)
        except Exception as exc:  # a backend must not raise, but one bad image never stops a batch
            return error_row(item, f"{type(exc).__name__}: {exc}", self.backend_name)

    def _image(self, item: WorkItem) -> Any:
        """The path, after a header check; with an explicit pixel limit, the pixels decoded under it."""
        from qprobe.io import DEFAULT_MAX_PIXELS, image_info, load_rgb

        if self.max_pixels is None:
            image_info(item.path, max_pixels=DEFAULT_MAX_PIXELS)  # oversize: refused before any decoding
            return item.path
        return load_rgb(item.path, max_pixels=self.max_pixels)

    def score_chunk(self, items: list[WorkItem]) -> list[dict[str, Any]]:
        return [self.score_one(it) for it in items]


# -- local process-pool plumbing -------------------------------------------------------------
_SCORER: ChunkScorer | None = None
_INIT_ERROR: str | None = None


class WorkerStartError(RuntimeError):
    """The backend could not be created in a worker (bad name, missing weights, ...)."""


def _watch_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Exit this worker when the driver dies (SIGKILL leaves no chance to clean up)."""
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def init_pool_worker(parent_pid: int, threads: int, scorer_kwargs: dict[str, Any]) -> None:
    """Process-pool initializer: watchdog, thread caps, backend created once."""
    global _SCORER, _INIT_ERROR
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="qprobe-parent-watch").start()
    limit_threads(threads)
    try:
        _SCORER = ChunkScorer(**scorer_kwargs)
    except Exception as exc:  # reported on the first task instead of a silently broken pool
        _INIT_ERROR = f"{type(exc).__name__}: {exc}"


def pool_score_chunk(items: list[WorkItem]) -> list[dict[str, Any]]:
    if _SCORER is None:
        raise WorkerStartError(_INIT_ERROR or "worker was not initialised")
    return _SCORER.score_chunk(items)
