"""KonIQ-10k (Hosu et al., TIP 2020): 10,073 in-the-wild images, 1024x768.

Layouts accepted: the authors' label files ``koniq10k_distributions_sets_official.csv``
(with the official ``set``: training / validation / test) or
``koniq10k_scores_and_distributions.csv`` (no set column; split "all"),
with images in ``1024x768/`` (or ``512x384/``); and the unified CSV.

``mos`` is the mean of the published rating distribution ``c1..c5`` (the
1–5 ACR scale itself; equal to the unified CSV's score), ``mos_raw`` the
published ``MOS`` (0–100) and ``mos_std`` the published ``SD`` (1–5 scale).
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

NAME = "koniq10k"
LABEL_FILES = ("koniq10k_distributions_sets_official.csv", "koniq10k_scores_and_distributions.csv")
UNIFIED_SCALE = Scale(1.0, 5.0)
RAW_SCALE = Scale(0.0, 100.0)
SPLIT_NAMES = {"training": "train", "validation": "val", "test": "test"}


@DATASETS.register(
    NAME,
    raw_scale=(0.0, 100.0),
    higher_is_better=True,
    description="KonIQ-10k (10,073 authentic images; official train/val/test sets)",
    layouts=[f"{LABEL_FILES[0]} or {LABEL_FILES[1]} + 1024x768/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, UNIFIED_SCALE, image_root)
    labels = path if path.is_file() else next((path / f for f in LABEL_FILES if (path / f).is_file()), None)
    if labels is None:
        raise ManifestError(f"{path}: no KonIQ-10k label file ({' or '.join(LABEL_FILES)}) found")
    root = labels.parent
    rows = read_csv(labels)
    require_columns(labels, rows, ("image_name", "c1", "c2", "c3", "c4", "c5", "MOS"))
    index = FileIndex(image_root or root)
    b = RowBuilder(NAME, RAW_SCALE, labels)
    for i, r in enumerate(rows):
        where = f"{labels}:{i + 2}"
        dist = [to_float(r[f"c{k}"], where) for k in range(1, 6)]
        total = sum(dist)
        if total <= 0:
            raise ManifestError(f"{where}: rating distribution c1..c5 sums to {total}")
        mean = sum(k * p for k, p in zip(range(1, 6), dist)) / total
        name = r["image_name"]
        b.add(
            Path(name).stem,
            index.find(f"1024x768/{name}", name, f"512x384/{name}"),
            to_float(r["MOS"], where),
            mos=mean,
            wanted=f"1024x768/{name}",
            std_raw=None,
            mos_std=to_float(r["SD"], where) if r.get("SD") else None,
            split=SPLIT_NAMES.get(r.get("set", ""), r.get("set") or "all"),
            n_ratings=int(float(r["c_total"])) if r.get("c_total") else None,
        )
    return b.finish()
