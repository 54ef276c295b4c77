"""UHD-IQA (Hosu et al., ECCV-W 2024): 6,073 aesthetic 4K photos, MOS 0–1.

Layouts accepted: the published metadata CSV (``uhd-iqa-metadata.csv``, or
the per-set ``uhd-iqa-{training,validation,test}-metadata.csv``; columns
``image_name, quality_mos`` and, in the joint file, ``set``) with images in
``training/``, ``validation/``, ``test/`` (or beside the CSV); and the
unified CSV (``dis_img_path = UHD-IQA/<set>/<n>.jpg``). The official set
becomes the split (train / val / test).
"""

from __future__ import annotations

from pathlib import Path

from qprobe.errors import ManifestError
from qprobe.eval.datasets import DATASETS
from qprobe.eval.datasets._common import (
    FileIndex,
    RowBuilder,
    Scale,
    is_unified_csv,
    read_csv,
    read_unified,
    require_columns,
    to_float,
)
from qprobe.manifest import ManifestRow

NAME = "uhdiqa"
SCALE = Scale(0.0, 1.0)
SETS = {"training": "train", "validation": "val", "test": "test"}


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="UHD-IQA (6,073 4K photos; MOS 0-1; official training/validation/test)",
    layouts=["uhd-iqa-metadata.csv (or per-set metadata CSVs) + training/ validation/ test/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        rows = read_unified(path, NAME, SCALE, image_root)
        for r in rows:
            parent = Path(r.path).parent.name
            r.split = SETS.get(parent, r.split)
        return rows
    if path.is_file():
        files = [(path, None)]
    elif (path / "uhd-iqa-metadata.csv").is_file():
        files = [(path / "uhd-iqa-metadata.csv", None)]
    else:
        files = [
            (path / f"uhd-iqa-{s}-metadata.csv", s)
            for s in SETS
            if (path / f"uhd-iqa-{s}-metadata.csv").is_file()
        ]
    if not files:
        raise ManifestError(f"{path}: no UHD-IQA metadata CSV (uhd-iqa-metadata.csv) found")
    index = FileIndex(image_root or files[0][0].parent)
    b = RowBuilder(NAME, SCALE, files[0][0])
    for labels, set_name in files:
        rows = read_csv(labels)
        require_columns(labels, rows, ("image_name", "quality_mos"))
        for i, r in enumerate(rows):
            s = set_name or r.get("set", "")
            name = r["image_name"]
            b.add(
                Path(name).stem,
                index.find(f"{s}/{name}" if s else name, name),
                to_float(r["quality_mos"], f"{labels}:{i + 2}"),
                wanted=f"{s}/{name}" if s else name,
                split=SETS.get(s, s or "all"),
            )
    return b.finish()
