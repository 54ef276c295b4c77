"""SPAQ (Fang et al., CVPR 2020): 11,125 smartphone photos.

Layouts accepted: the published ``Annotations/MOS and Image attribute scores.xlsx``
(columns ``Image name, MOS, Brightness, Colorfulness, Contrast, Noisiness,
Sharpness``; read with ``openpyxl``) or the same table saved as CSV, with
images in ``TestImage/``; and the unified CSV. MOS is on 0–100.
The attribute scores are kept as extra keys (``attr_brightness`` ...).
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
    read_xlsx,
    to_float,
)
from qprobe.manifest import ManifestRow

NAME = "spaq"
SCALE = Scale(0.0, 100.0)
LABEL_NAME = "MOS and Image attribute scores"
ATTRIBUTES = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="SPAQ (11,125 smartphone photos, MOS 0-100, 5 attribute scores)",
    layouts=[f"Annotations/{LABEL_NAME}.xlsx (or .csv) + TestImage/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    labels = path if path.is_file() else _find_labels(path)
    rows = read_xlsx(labels, ("Image name", "MOS")) if labels.suffix.lower() == ".xlsx" else read_csv(labels)
    root = labels.parent.parent if labels.parent.name.lower() == "annotations" else labels.parent
    index = FileIndex(image_root or root)
    b = RowBuilder(NAME, SCALE, labels)
    for i, r in enumerate(rows):
        if "Image name" not in r or "MOS" not in r:
            raise ManifestError(f"{labels}: needs columns 'Image name' and 'MOS', found {sorted(r)}")
        name = str(r["Image name"]).strip()
        where = f"{labels}: row {i + 2}"
        attrs = {f"attr_{a.lower()}": to_float(r[a], where) for a in ATTRIBUTES if r.get(a) not in (None, "")}
        b.add(
            Path(name).stem,
            index.find(f"TestImage/{name}", name),
            to_float(r["MOS"], where),
            wanted=f"TestImage/{name}",
            **attrs,
        )
    return b.finish()


def _find_labels(root: Path) -> Path:
    for folder in (root / "Annotations", root):
        for suffix in (".xlsx", ".csv"):
            p = folder / f"{LABEL_NAME}{suffix}"
            if p.is_file():
                return p
    raise ManifestError(f"{root}: SPAQ label file 'Annotations/{LABEL_NAME}.xlsx' not found")
