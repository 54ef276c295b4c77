"""The dataset manifest: JSONL, one row per image (DESIGN §3.3).

Required fields: ``id, path, dataset, split, width, height``; ``mos`` is on
the 1–5 scale (higher is better) or ``None`` for unlabelled rows. Optional:
``mos_std`` (1–5 scale), ``mos_raw`` (the dataset's own scale), ``defects``
(``[{bbox: [x1, y1, x2, y2] original pixels, type, severity}]``),
``source_id`` (the pristine source an image was made from), ``dof`` (bool).
Any further keys are kept in ``extra`` and written back unchanged.

``path`` is stored as given; relative paths are resolved against the
manifest file's folder by :func:`resolve_path`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from qprobe.errors import ManifestError
from qprobe.types import Box

REQUIRED = ("id", "path", "dataset", "split", "width", "height")
KNOWN = REQUIRED + ("mos", "mos_std", "mos_raw", "defects", "source_id", "dof")


@dataclass
class DefectLabel:
    bbox: Box
    type: str
    severity: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": self.bbox.to_list(ndigits=None), "type": self.type, "severity": self.severity}


@dataclass
class ManifestRow:
    id: str
    path: str
    dataset: str
    split: str
    width: int
    height: int
    mos: float | None = None
    mos_std: float | None = None
    mos_raw: float | None = None
    defects: list[DefectLabel] = field(default_factory=list)
    source_id: str | None = None
    dof: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "dataset": self.dataset,
            "split": self.split,
            "width": self.width,
            "height": self.height,
            "mos": self.mos,
            "mos_std": self.mos_std,
            "mos_raw": self.mos_raw,
            "defects": [d.to_dict() for d in self.defects],
            "source_id": self.source_id,
            "dof": self.dof,
        }
        out.update(self.extra)
        return out

    @property
    def gt_boxes(self) -> list[Box]:
        return [d.bbox for d in self.defects]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "row") -> "ManifestRow":
        validate_row(data, where)
        defects = [
            DefectLabel(Box.from_list(d["bbox"]), str(d.get("type", "unknown")), d.get("severity"))
            for d in data.get("defects") or []
        ]
        return cls(
            id=str(data["id"]),
            path=str(data["path"]),
            dataset=str(data["dataset"]),
            split=str(data["split"]),
            width=int(data["width"]),
            height=int(data["height"]),
            mos=_opt_float(data.get("mos")),
            mos_std=_opt_float(data.get("mos_std")),
            mos_raw=_opt_float(data.get("mos_raw")),
            defects=defects,
            source_id=None if data.get("source_id") is None else str(data["source_id"]),
            dof=bool(data.get("dof", False)),
            extra={k: v for k, v in data.items() if k not in KNOWN},
        )


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def validate_row(data: dict[str, Any], where: str = "row") -> None:
    """Raise :class:`ManifestError` naming the first problem of a raw row."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data or data[k] is None]
    if missing:
        raise ManifestError(f"{where}: missing required field(s) {missing}")
    for k in ("width", "height"):
        v = data[k]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ManifestError(f"{where}: {k} must be a positive integer, got {v!r}")
    mos = data.get("mos")
    if mos is not None:
        if not isinstance(mos, (int, float)) or isinstance(mos, bool) or not math.isfinite(mos):
            raise ManifestError(f"{where}: mos must be a finite number, got {mos!r}")
        if not 1.0 - 1e-6 <= float(mos) <= 5.0 + 1e-6:
            raise ManifestError(f"{where}: mos {mos} is outside the 1–5 scale (keep raw values in mos_raw)")
    std = data.get("mos_std")
    if std is not None and (not isinstance(std, (int, float)) or std < 0):
        raise ManifestError(f"{where}: mos_std must be a non-negative number, got {std!r}")
    defects = data.get("defects") or []
    if not isinstance(defects, list):
        raise ManifestError(f"{where}: defects must be a list")
    for i, d in enumerate(defects):
        if not isinstance(d, dict) or "bbox" not in d:
            raise ManifestError(f"{where}: defects[{i}] needs a bbox")
        try:
            box = Box.from_list(d["bbox"])
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: defects[{i}].bbox is invalid: {exc}") from None
        if box.x1 < 0 or box.y1 < 0 or box.x2 > data["width"] or box.y2 > data["height"]:
            raise ManifestError(
                f"{where}: defects[{i}].bbox {box.to_list()} lies outside the "
                f"{data['width']}x{data['height']} image"
            )


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read and validate every row; errors name the file and line."""
    rows: list[ManifestRow] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON ({exc})") from None
            row = ManifestRow.from_dict(data, where)
            if row.id in seen:
                raise ManifestError(f"{where}: duplicate id {row.id!r}")
            seen.add(row.id)
            rows.append(row)
    return rows


def manifest_text(rows: Iterable[ManifestRow]) -> str:
    """Deterministic JSONL text (sorted keys, compact) of ``rows``."""
    return "".join(json.dumps(r.to_dict(), sort_keys=True, separators=(",", ":")) + "\n" for r in rows)


def write_manifest(path: str | Path, rows: Iterable[ManifestRow]) -> None:
    """Validate and write atomically; the byte output is a function of the rows."""
    from qprobe._fs import atomic_write_text

    rows = list(rows)
    seen: set[str] = set()
    for r in rows:
        validate_row(r.to_dict(), f"row {r.id!r}")
        if r.id in seen:
            raise ManifestError(f"duplicate id {r.id!r}")
        seen.add(r.id)
    atomic_write_text(path, manifest_text(rows))


def resolve_path(row: ManifestRow, manifest_path: str | Path) -> Path:
    p = Path(row.path)
    return p if p.is_absolute() else Path(manifest_path).resolve().parent / p
