"""Turn a batch INPUT (folder, manifest or list file) into work items."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe.errors import QProbeError
from qprobe.io import list_images
from qprobe.manifest import read_manifest, resolve_path


@dataclass(frozen=True)
class WorkItem:
    """One image to score: a stable ``id`` (the resume key) and its path."""

    id: str
    path: str
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def collect_items(source: str | Path, recursive: bool = True) -> list[WorkItem]:
    """Work items of a folder (ids = paths relative to it), a manifest (ids = row ids)
    or a ``.txt`` list (one path per line, relative to the list's folder; ids = the lines)."""
    src = Path(source)
    if not src.exists():
        raise QProbeError(f"batch input {src} does not exist (give a folder, a .jsonl manifest or a .txt list)")
    if src.is_dir():
        return [
            WorkItem(id=p.relative_to(src).as_posix(), path=os.path.abspath(p))
            for p in list_images(src, recursive=recursive)
        ]
    suffix = src.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = read_manifest(src)
        return [
            WorkItem(id=r.id, path=str(resolve_path(r, src)), extra=_label_fields(r.mos, r.dataset))
            for r in rows
        ]
    if suffix in (".txt", ".lst", ".list"):
        return _read_list(src)
    raise QProbeError(
        f"batch input {src} is neither a folder, a .jsonl manifest nor a .txt list of image paths"
    )


def _label_fields(mos: float | None, dataset: str) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": dataset}
    if mos is not None:
        out["mos"] = mos
    return out


def _read_list(src: Path) -> list[WorkItem]:
    items: list[WorkItem] = []
    seen: set[str] = set()
    for lineno, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry in seen:
            raise QProbeError(f"{src}:{lineno}: {entry!r} is listed twice (ids must be unique)")
        seen.add(entry)
        p = Path(entry)
        items.append(WorkItem(id=entry, path=os.path.abspath(p if p.is_absolute() else src.parent / p)))
    return items


def item_to_json(item: WorkItem) -> str:
    """Compact JSON of an item (how items travel to Ray workers)."""
    return json.dumps({"id": item.id, "path": item.path, "extra": item.extra}, separators=(",", ":"))


def item_from_json(text: str) -> WorkItem:
    data = json.loads(text)
    return WorkItem(id=data["id"], path=data["path"], extra=dict(data.get("extra") or {}))
