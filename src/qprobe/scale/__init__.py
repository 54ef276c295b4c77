"""Batch scoring of many images: local process pool or Ray Data, resumable.

``run_batch(BatchConfig(input="photos/", out="results.jsonl"))`` scores every
image of a folder, a dataset manifest or a list file and appends one JSON line
per image to ``out``. A single writer (the driver process) owns the output
file; workers only return results. Killed at any moment (even SIGKILL) and
re-run, the batch skips what is already written, so every image appears
exactly once and no line is torn.

This package imports no heavy dependency; Ray is imported only by the Ray path.
"""

from __future__ import annotations

from typing import Any

from qprobe.scale.config import BatchConfig

__all__ = ["BatchConfig", "BatchSummary", "run_batch"]


def __getattr__(name: str) -> Any:  # the runner (numpy, PIL, rich) loads on first use, not for `--help`
    if name in ("BatchSummary", "run_batch"):
        from qprobe.scale import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'qprobe.scale' has no attribute {name!r}")
