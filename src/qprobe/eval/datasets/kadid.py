"""KADID-10k (Lin, Hosu & Saupe, QoMEX 2019): 81 references x 25 distortions x 5 levels.

Layouts accepted: the published ``dmos.csv`` (``dist_img, ref_img, dmos, var``)
with ``images/``; and the unified CSV. Despite its name the published
``dmos`` is a degradation-category rating on 1–5 where **higher is better**
(5 = imperceptible), so it maps to 1–5 unchanged; ``mos_std = sqrt(var)``.
``source_id`` is the reference image (``I01``), so splits never share one.
"""

from __future__ import annotations

import math
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

NAME = "kadid10k"
SCALE = Scale(1.0, 5.0)
DISTORTIONS = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "color_diffusion",
    "color_shift",
    "color_quantization",
    "color_saturation_hsv",
    "color_saturation_lab",
    "jpeg2000",
    "jpeg",
    "white_noise",
    "white_noise_color",
    "impulse_noise",
    "multiplicative_noise",
    "denoise",
    "brighten",
    "darken",
    "mean_shift",
    "jitter",
    "non_eccentricity_patch",
    "pixelate",
    "quantization",
    "color_block",
    "high_sharpen",
    "contrast_change",
)
"""Distortion names by the 1-based index in the file name ``Iref_DD_LL.png``."""


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="KADID-10k (10,125 synthetically distorted images, 25 types x 5 levels)",
    layouts=["dmos.csv + images/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    labels = path if path.is_file() else path / "dmos.csv"
    if not labels.is_file():
        raise ManifestError(f"{path}: KADID-10k label file dmos.csv not found")
    rows = read_csv(labels)
    require_columns(labels, rows, ("dist_img", "ref_img", "dmos"))
    index = FileIndex(image_root or labels.parent)
    b = RowBuilder(NAME, SCALE, labels)
    for i, r in enumerate(rows):
        where = f"{labels}:{i + 2}"
        name = r["dist_img"]
        parts = Path(name).stem.split("_")
        dist = level = None
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            k = int(parts[1])
            dist = DISTORTIONS[k - 1] if 1 <= k <= len(DISTORTIONS) else None
            level = int(parts[2])
        var = to_float(r["var"], where) if r.get("var") else None
        b.add(
            Path(name).stem,
            index.find(f"images/{name}", name),
            to_float(r["dmos"], where),
            wanted=f"images/{name}",
            std_raw=None if var is None else math.sqrt(max(var, 0.0)),
            source_id=Path(r["ref_img"]).stem,
            distortion=dist,
            level=level,
        )
    return b.finish()
