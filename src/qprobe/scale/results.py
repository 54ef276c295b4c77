"""The output file of a batch: one JSON row per image, written by one process.

Exactly-once rests on three facts: (1) only the driver process writes, through
:class:`~qprobe._fs.JsonlAppender` (one whole line per ``write``, fsynced);
(2) on start, :func:`~qprobe._fs.read_jsonl_tolerant` drops a torn last line
left by a killed run, and the ids already present are skipped; (3) the writer
refuses a second row for an id it has already written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qprobe._fs import JsonlAppender, atomic_write_text, read_jsonl_tolerant
from qprobe.errors import QProbeError
from qprobe.scale.inputs import WorkItem
from qprobe.types import Assessment

STATUS_SCORED = "scored"
STATUS_FAILED = "failed"


def assessment_row(item: WorkItem, assessment: Assessment, include_trajectory: bool) -> dict[str, Any]:
    """The output row of one scored (or failed) image."""
    row = assessment.to_dict(include_trajectory=include_trajectory)
    row["path"] = item.path
    row.update(item.extra)
    row["id"] = item.id
    row["status"] = STATUS_SCORED if assessment.ok else STATUS_FAILED
    if not assessment.ok and not row.get("error"):
        row["error"] = "backend returned no score"
    return row


def error_row(item: WorkItem, message: str, backend: str = "") -> dict[str, Any]:
    """The output row of an image that could not be scored at all."""
    row: dict[str, Any] = {"path": item.path, "score": None, "backend": backend, "error": message}
    row.update(item.extra)
    row["id"] = item.id
    row["status"] = STATUS_FAILED
    return row


class ResultLog:
    """Resume state and single writer of a batch output file."""

    def __init__(self, path: str | Path, retry_failed: bool = False) -> None:
        self.path = Path(path)
        rows = read_jsonl_tolerant(self.path, repair=True)
        self.done: dict[str, str] = {}
        kept: list[dict[str, Any]] = []
        for lineno, row in enumerate(rows, 1):
            rid = row.get("id") if isinstance(row, dict) else None
            if not isinstance(rid, str):
                raise QProbeError(
                    f"{self.path}: line {lineno} has no string 'id'; this file was not written by "
                    "`qprobe batch` (choose another --out)"
                )
            if rid in self.done:
                raise QProbeError(f"{self.path}: id {rid!r} appears twice (line {lineno}); the file was edited")
            if retry_failed and row.get("status") == STATUS_FAILED:
                continue
            self.done[rid] = str(row.get("status", STATUS_SCORED))
            kept.append(row)
        self.retried = len(rows) - len(kept)
        if self.retried:  # rewrite without the failed rows (atomically: a crash keeps the old file)
            atomic_write_text(
                self.path,
                "".join(json.dumps(r, sort_keys=True, default=str, separators=(",", ":")) + "\n" for r in kept),
            )
        self._appender: JsonlAppender | None = None

    def pending(self, items: list[WorkItem]) -> list[WorkItem]:
        return [it for it in items if it.id not in self.done]

    def open(self) -> "ResultLog":
        if self._appender is None:
            self._appender = JsonlAppender(self.path)
        return self

    def write(self, row: dict[str, Any]) -> bool:
        """Append ``row``; returns False (and writes nothing) if its id is already written."""
        rid = row["id"]
        if rid in self.done:
            return False
        if self._appender is None:
            self.open()
        assert self._appender is not None
        self._appender.write(row)
        self.done[rid] = str(row.get("status", STATUS_SCORED))
        return True

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None

    def __enter__(self) -> "ResultLog":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
