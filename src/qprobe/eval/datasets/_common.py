"""Helpers shared by the dataset converters.

A converter reads one dataset's published label files and folder layout and
returns :class:`~qprobe.manifest.ManifestRow` rows with

* ``mos`` on the 1–5 scale (higher is better), ``mos_raw`` the published value;
* ``mos_std`` on the 1–5 scale where the dataset publishes a spread;
* ``source_id`` = the reference (pristine) image for synthetic-distortion
  datasets, the image itself otherwise — splits are grouped by it;
* ``split`` = the dataset's official split where it has one, else ``"all"``;
* ``path`` absolute, ``width``/``height`` from the image header.

The mapping to 1–5 is affine on the dataset's nominal range ``[lo, hi]``
(see each converter's ``raw_scale`` metadata); for lower-is-better scales
(DMOS) it is inverted: ``mos = 1 + 4 * (hi - raw) / (hi - lo)``. Values that
fall outside the nominal range are clipped into 1–5 (``mos_raw`` keeps them).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qprobe.errors import ImageLoadError, ManifestError
from qprobe.io import image_info
from qprobe.manifest import ManifestRow

UNIFIED_COLUMNS = ("dis_img_path", "score")
"""Columns that identify the unified CSV layout of icbcbicc/IQA-Dataset."""


@dataclass(frozen=True)
class Scale:
    """A dataset's published score range and direction."""

    lo: float
    hi: float
    higher_is_better: bool = True

    def to_mos(self, raw: float) -> float:
        frac = (raw - self.lo) / (self.hi - self.lo)
        if not self.higher_is_better:
            frac = 1.0 - frac
        return float(min(5.0, max(1.0, 1.0 + 4.0 * frac)))

    def std_to_mos(self, std_raw: float) -> float:
        return float(abs(std_raw) * 4.0 / (self.hi - self.lo))


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts, header whitespace and a UTF-8 BOM stripped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise ManifestError(f"{path}: empty CSV file")
            reader.fieldnames = [f.strip() for f in reader.fieldnames]
            return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except FileNotFoundError:
        raise ManifestError(f"label file not found: {path}") from None


def require_columns(path: Path, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    have = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in have]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {missing}; found {sorted(have)}")


def to_float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: expected a number, got {value!r}") from None


def is_unified_csv(path: Path) -> bool:
    """True if ``path`` is a CSV in the icbcbicc/IQA-Dataset layout."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = [h.strip() for h in next(csv.reader(fh), [])]
    return all(c in header for c in UNIFIED_COLUMNS)


class FileIndex:
    """Case-insensitive lookup of files below a root (datasets differ in case across releases)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, Path] | None = None

    def _build(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath) / f
                index.setdefault(p.relative_to(self.root).as_posix().lower(), p)
        return index

    def find(self, *candidates: str) -> Path | None:
        """The first existing file among relative ``candidates`` (exact, then case-insensitive)."""
        for c in candidates:
            p = self.root / c
            if p.is_file():
                return p
        if self._index is None:
            self._index = self._build()
        for c in candidates:
            hit = self._index.get(Path(c).as_posix().lower())
            if hit is not None:
                return hit
        return None


class RowBuilder:
    """Builds manifest rows for one dataset and collects missing images for one clear error."""

    def __init__(self, dataset: str, scale: Scale, label_file: Path) -> None:
        self.dataset = dataset
        self.scale = scale
        self.label_file = label_file
        self.rows: list[ManifestRow] = []
        self.missing: list[str] = []
        self.unreadable: list[str] = []

    def add(
        self,
        image_id: str,
        path: Path | None,
        raw: float,
        *,
        wanted: str,
        std_raw: float | None = None,
        mos: float | None = None,
        mos_std: float | None = None,
        split: str = "all",
        source_id: str | None = None,
        size: tuple[int, int] | None = None,
        **extra: Any,
    ) -> None:
        """Add one image; ``mos``/``mos_std`` override the affine map when the dataset gives 1–5 values."""
        if path is None:
            self.missing.append(wanted)
            return
        if size is None:
            try:
                info = image_info(path)
            except ImageLoadError as exc:
                self.unreadable.append(f"{path} ({exc.reason})")
                return
            size = (info.width, info.height)
        self.rows.append(
            ManifestRow(
                id=image_id,
                path=str(path.resolve()),
                dataset=self.dataset,
                split=split,
                width=int(size[0]),
                height=int(size[1]),
                mos=self.scale.to_mos(raw) if mos is None else float(mos),
                mos_std=mos_std if std_raw is None else self.scale.std_to_mos(std_raw),
                mos_raw=float(raw),
                source_id=source_id if source_id is not None else image_id,
                extra={k: v for k, v in extra.items() if v is not None},
            )
        )

    def finish(self) -> list[ManifestRow]:
        if self.missing or self.unreadable:
            parts = []
            if self.missing:
                parts.append(f"{len(self.missing)} image(s) not found (first: {self.missing[:3]})")
            if self.unreadable:
                parts.append(f"{len(self.unreadable)} unreadable (first: {self.unreadable[:3]})")
            raise ManifestError(
                f"{self.dataset}: {'; '.join(parts)} for labels in {self.label_file}. "
                "Check the dataset root (it must hold the published folder layout) or pass the "
                "folder that holds the images."
            )
        if not self.rows:
            raise ManifestError(f"{self.dataset}: no labelled images found in {self.label_file}")
        return self.rows


def read_unified(path: Path, dataset: str, scale: Scale, image_root: Path | None = None) -> list[ManifestRow]:
    """Read the unified icbcbicc/IQA-Dataset CSV: ``dis_img_path, dis_type, [ref_img_path,] score``.

    Paths in that layout start with the dataset's own folder name
    (``KADID-10k/images/I01_01_01.png``) and are resolved against
    ``image_root`` (default: the CSV's folder). ``dis_type`` becomes the
    ``distortion`` extra key; ``ref_img_path`` the ``source_id``.
    """
    rows = read_csv(path)
    require_columns(path, rows, UNIFIED_COLUMNS)
    root = image_root or path.parent
    index = FileIndex(root)
    ids = unique_ids([r["dis_img_path"] for r in rows])
    b = RowBuilder(dataset, scale, path)
    for i, (r, image_id) in enumerate(zip(rows, ids)):
        rel = r["dis_img_path"]
        ref = r.get("ref_img_path") or None
        b.add(
            image_id,
            index.find(rel, rel.split("/", 1)[-1]),
            to_float(r["score"], f"{path}:{i + 2}"),
            wanted=rel,
            source_id=Path(ref).stem if ref else None,
            distortion=r.get("dis_type") or None,
        )
    return b.finish()


def unique_ids(paths: list[str]) -> list[str]:
    """File stems as ids when they are unique (the usual case), else the relative path sans suffix."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(Path(p).with_suffix("")).replace(os.sep, "/") for p in paths]


def read_xlsx(path: Path, header_has: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of the first worksheet holding a header row with all of ``header_has``.

    Published label spreadsheets often carry title rows above the header: the
    first row (of any sheet) containing every name in ``header_has`` is the
    header, the rows below it are records (blank rows skipped).
    """
    try:
        import openpyxl
    except ImportError:
        raise ManifestError(
            f"{path}: reading .xlsx label files needs openpyxl: pip install 'qprobe[eval]' "
            "(or save the sheet as CSV with the same columns)"
        ) from None
    if not path.is_file():
        raise ManifestError(f"label file not found: {path}")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for ws in wb.worksheets:
            header: list[str] | None = None
            out: list[dict[str, Any]] = []
            for values in ws.iter_rows(values_only=True):
                cells = ["" if v is None else v for v in values]
                if header is None:
                    names = [str(c).strip() for c in cells]
                    if all(h in names for h in header_has):
                        header = names
                    continue
                if all(c == "" for c in cells):
                    continue
                out.append({h: c for h, c in zip(header, cells) if h})
            if header is not None:
                return out
    finally:
        wb.close()
    raise ManifestError(f"{path}: no sheet has a header row with {list(header_has)}")
