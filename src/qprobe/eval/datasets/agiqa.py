"""AGIQA-3K (Li et al., TCSVT 2023): 2,982 AI-generated images with quality and alignment MOS.

Layout accepted: the published ``data.csv`` (``name, prompt, adj1, adj2,
style, mos_quality, std_quality, mos_align, std_align``) with the images in
the same folder, in ``images/`` or in ``AGIQA-3K/``; a label CSV with those
columns can also be passed directly. ``mos_quality`` (0–5, higher is better)
is the target; prompt and alignment MOS are kept as extra keys.
"""

from __future__ import annotations

from pathlib import Path

from qprobe.errors import ManifestError
from qprobe.eval.datasets import DATASETS
from qprobe.eval.datasets._common import FileIndex, RowBuilder, Scale, read_csv, require_columns, to_float
from qprobe.manifest import ManifestRow

NAME = "agiqa3k"
SCALE = Scale(0.0, 5.0)


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="AGIQA-3K (2,982 AI-generated images; perceptual quality MOS 0-5)",
    layouts=["data.csv + images (root, images/ or AGIQA-3K/)"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    labels = path if path.is_file() else path / "data.csv"
    if not labels.is_file():
        raise ManifestError(f"{path}: AGIQA-3K label file data.csv not found")
    rows = read_csv(labels)
    require_columns(labels, rows, ("name", "mos_quality"))
    index = FileIndex(image_root or labels.parent)
    b = RowBuilder(NAME, SCALE, labels)
    for i, r in enumerate(rows):
        where = f"{labels}:{i + 2}"
        name = r["name"]
        b.add(
            Path(name).stem,
            index.find(name, f"images/{name}", f"AGIQA-3K/{name}"),
            to_float(r["mos_quality"], where),
            wanted=name,
            std_raw=to_float(r["std_quality"], where) if r.get("std_quality") else None,
            prompt=r.get("prompt") or None,
            generator=name.split("_")[0],
            mos_align=to_float(r["mos_align"], where) if r.get("mos_align") else None,
        )
    return b.finish()
