"""LIVE In the Wild Image Quality Challenge Database (CLIVE, Ghadiyaram & Bovik, TIP 2016).

Layouts accepted:

* the official ``ChallengeDB_release``: ``Data/AllImages_release.mat``
  (cell array of file names), ``Data/AllMOS_release.mat``,
  ``Data/AllStdDev_release.mat`` (read with ``scipy.io``) and ``Images/``
  (the 7 training images ``t1..t7`` may sit in ``Images/trainingImages/``);
* the re-export in ``../shared/data/clive``: ``labels.csv`` (``image,
  original_name, mos, mos_std, width, height, is_training_image, ...``) and
  ``images/``;
* the unified icbcbicc/IQA-Dataset CSV (``LIVE_Challenge.csv``).

MOS is on 0–100 (higher is better): ``mos = 1 + 4 * MOS / 100``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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

NAME = "clive"
SCALE = Scale(0.0, 100.0, higher_is_better=True)


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="LIVE In the Wild Challenge (1162 authentic photos, MOS 0-100)",
    layouts=[
        "Data/AllImages_release.mat + AllMOS_release.mat + AllStdDev_release.mat + Images/",
        "labels.csv + images/",
        "unified CSV",
    ],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    root = path
    for cand in (root / "Data", root / "ChallengeDB_release" / "Data"):
        if (cand / "AllMOS_release.mat").is_file():
            return _load_official(cand.parent, image_root)
    if (root / "labels.csv").is_file():
        return _load_reexport(root, image_root)
    raise ManifestError(
        f"{root}: not a CLIVE folder: expected Data/AllMOS_release.mat (official ChallengeDB "
        "release) or labels.csv, or pass the unified LIVE_Challenge.csv"
    )


def _mat_vector(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise ManifestError(f"CLIVE label file not found: {path}")
    data = loadmat(path, squeeze_me=True)
    if key not in data:
        keys = [k for k in data if not k.startswith("__")]
        raise ManifestError(f"{path}: variable {key!r} not found (has {keys})")
    return np.atleast_1d(data[key])


def _load_official(root: Path, image_root: Path | None) -> list[ManifestRow]:
    data = root / "Data"
    names = [str(n).strip() for n in _mat_vector(data / "AllImages_release.mat", "AllImages_release")]
    mos = _mat_vector(data / "AllMOS_release.mat", "AllMOS_release").astype(float)
    std = _mat_vector(data / "AllStdDev_release.mat", "AllStdDev_release").astype(float)
    if not len(names) == len(mos) == len(std):
        raise ManifestError(
            f"{data}: {len(names)} names, {len(mos)} MOS and {len(std)} std values differ in count"
        )
    index = FileIndex(image_root or root / "Images")
    b = RowBuilder(NAME, SCALE, data / "AllMOS_release.mat")
    for name, m, s in zip(names, mos, std):
        training = name.lower().startswith("t") and Path(name).stem[1:].isdigit()
        b.add(
            Path(name).stem,
            index.find(name, f"trainingImages/{name}"),
            float(m),
            wanted=name,
            std_raw=float(s),
            is_training_image=training,
        )
    return b.finish()


def _load_reexport(root: Path, image_root: Path | None) -> list[ManifestRow]:
    labels = root / "labels.csv"
    rows = read_csv(labels)
    require_columns(labels, rows, ("image", "mos"))
    index = FileIndex(image_root or root / "images")
    b = RowBuilder(NAME, SCALE, labels)
    for i, r in enumerate(rows):
        where = f"{labels}:{i + 2}"
        size = (int(r["width"]), int(r["height"])) if r.get("width") and r.get("height") else None
        b.add(
            Path(r["image"]).stem,
            index.find(r["image"]),
            to_float(r["mos"], where),
            wanted=r["image"],
            std_raw=to_float(r["mos_std"], where) if r.get("mos_std") else None,
            size=size,
            is_training_image=r.get("is_training_image") == "1",
            original_name=r.get("original_name") or None,
        )
    return b.finish()
