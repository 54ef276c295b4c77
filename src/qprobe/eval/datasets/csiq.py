"""CSIQ (Larson & Chandler, JEI 2010): 30 references x 6 distortions x 4-5 levels, DMOS.

Layouts accepted: the published ``csiq.DMOS.xlsx`` (a sheet with header
``image, dst_idx, dst_type, dst_lev, dmos_std, dmos`` below title rows; a
CSV with those columns works too) with images in
``dst_imgs/<type folder>/<image>.<TYPE>.<level>.png`` (folder and tag case
differ between copies: matched case-insensitively); and the unified CSV.

DMOS is on 0–1 where **lower is better**: ``mos = 1 + 4 * (1 - dmos)``
(inverted), ``mos_raw`` keeps the DMOS.
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

NAME = "csiq"
SCALE = Scale(0.0, 1.0, higher_is_better=False)
LABEL_FILES = ("csiq.DMOS.xlsx", "csiq.DMOS.csv")
# dst_type in the sheet -> (folder, tag in file names)
TYPES = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "f noise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
HEADER = ("image", "dst_type", "dst_lev", "dmos")


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=False,
    description="CSIQ (866 distorted images, 6 types; DMOS 0-1, lower is better -> inverted)",
    layouts=["csiq.DMOS.xlsx + dst_imgs/<type>/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    labels = path if path.is_file() else next((path / f for f in LABEL_FILES if (path / f).is_file()), None)
    if labels is None:
        raise ManifestError(f"{path}: CSIQ label file ({' or '.join(LABEL_FILES)}) not found")
    rows = read_xlsx(labels, HEADER) if labels.suffix.lower() == ".xlsx" else read_csv(labels)
    index = FileIndex(image_root or labels.parent)
    b = RowBuilder(NAME, SCALE, labels)
    for i, r in enumerate(rows):
        if any(h not in r for h in HEADER):
            raise ManifestError(f"{labels}: needs columns {list(HEADER)}, found {sorted(r)}")
        where = f"{labels}: row {i + 1}"
        image = _name(r["image"])
        dtype = str(r["dst_type"]).strip().lower()
        if dtype not in TYPES:
            raise ManifestError(f"{where}: unknown dst_type {r['dst_type']!r} (known: {sorted(TYPES)})")
        folder, tag = TYPES[dtype]
        level = int(to_float(r["dst_lev"], where))
        fname = f"{image}.{tag}.{level}.png"
        std = r.get("dmos_std")
        b.add(
            f"{image}.{tag}.{level}",
            index.find(f"dst_imgs/{folder}/{fname}", fname),
            to_float(r["dmos"], where),
            wanted=f"dst_imgs/{folder}/{fname}",
            std_raw=None if std in (None, "") else to_float(std, where),
            source_id=image,
            distortion=folder,
            level=level,
        )
    return b.finish()


def _name(value: object) -> str:
    """Sheet cells hold numeric names (1600) as numbers."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
