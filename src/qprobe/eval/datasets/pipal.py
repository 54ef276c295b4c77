"""PIPAL (Jinjin et al., ECCV 2020): perceptual IQA with GAN/restoration outputs, Elo scores.

Layouts accepted: the NTIRE release — label folders ``Train_Label/``
(``Val_Label/``, ``Test_Label/`` where present) with one ``A0001.txt`` per
reference holding lines ``A0001_00_00.bmp,1520.0648``; distorted images in
``Train_Dis/`` (NTIRE naming; also ``Train_Dist/``, ``Distortion_1..4/``,
``Val_Dis/``, ``Test_Dis/``);
and the unified CSV.

Scores are Elo ratings (observed 917–1836, higher is better); they are mapped
affinely from the nominal range 900–1900 to 1–5 (clipped). The split is the
label folder (train / val / test); ``source_id`` is the reference ``A0001``.
"""

from __future__ import annotations

from pathlib import Path

from qprobe.errors import ManifestError
from qprobe.eval.datasets import DATASETS
from qprobe.eval.datasets._common import FileIndex, RowBuilder, Scale, is_unified_csv, read_unified, to_float
from qprobe.manifest import ManifestRow

NAME = "pipal"
SCALE = Scale(900.0, 1900.0)
LABEL_DIRS = {"Train_Label": "train", "Val_Label": "val", "Test_Label": "test"}
IMAGE_DIRS = (
    "Train_Dis",
    "Val_Dis",
    "Test_Dis",
    "Train_Dist",
    "Val_Dist",
    "Test_Dist",
    "Distortion_1",
    "Distortion_2",
    "Distortion_3",
    "Distortion_4",
)


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="PIPAL (Elo scores of restoration/GAN outputs; 200 references)",
    layouts=["Train_Label/*.txt + Train_Dist/ (or Distortion_1..4/)", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    label_dirs = [(path / d, s) for d, s in LABEL_DIRS.items() if (path / d).is_dir()]
    if not label_dirs:
        raise ManifestError(f"{path}: no PIPAL label folder ({', '.join(LABEL_DIRS)}) found")
    index = FileIndex(image_root or path)
    b = RowBuilder(NAME, SCALE, label_dirs[0][0])
    for folder, split in label_dirs:
        for txt in sorted(folder.glob("*.txt")):
            for lineno, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                name, sep, score = line.partition(",")
                if not sep:
                    raise ManifestError(f"{txt}:{lineno}: expected 'IMAGE,ELO', got {line!r}")
                name = name.strip()
                b.add(
                    Path(name).stem,
                    index.find(*(f"{d}/{name}" for d in IMAGE_DIRS), name),
                    to_float(score, f"{txt}:{lineno}"),
                    wanted=name,
                    split=split,
                    source_id=Path(name).stem.split("_")[0],
                )
    return b.finish()
