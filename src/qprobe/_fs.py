"""Crash-safe file writing: no half-written file is ever left behind.

* :func:`atomic_write_bytes` / :func:`atomic_write_text` write to a temporary
  file in the same folder, fsync it and ``os.replace`` it into place.
* :class:`JsonlAppender` appends one complete JSON line per record with a
  single ``write`` + flush + fsync, and :func:`read_jsonl_tolerant` reads such
  a file back, dropping a torn last line left by a killed process (and
  truncating it away when asked, so that the next append starts clean).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask is process-global, not thread-safe


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_jsonl_tolerant(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file written by :class:`JsonlAppender`.

    A last line without its newline, or one that is not valid JSON, is the
    trace of a killed writer: it is dropped, and with ``repair=True`` cut off
    the file. A bad line *before* the last one is real corruption and raises.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    rows: list[dict[str, Any]] = []
    good_end = 0
    pos = 0
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        is_last = i == len(lines) - 1
        if is_last:
            # Text after the final newline: a torn write.
            break
        end = pos + len(line) + 1
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if i == len(lines) - 2 and not lines[-1]:
                    break  # torn but newline-terminated last line (rare): drop it
                raise ValueError(f"{path}: line {i + 1} is not valid JSON: {exc}") from exc
        good_end = end
        pos = end
    if repair and good_end != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return rows


class JsonlAppender:
    """Append JSON records, one whole line per ``write`` call, fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        read_jsonl_tolerant(self.path, repair=True)
        self._fh = open(self.path, "ab")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str, separators=(",", ":")) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
