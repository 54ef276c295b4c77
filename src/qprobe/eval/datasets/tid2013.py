"""TID2013 (Ponomarenko et al., 2015): 25 references x 24 distortions x 5 levels.

Layouts accepted: the published ``mos_with_names.txt`` (lines ``5.51429 I01_01_1.bmp``),
optional ``mos_std.txt`` (one value per line in the same order), images in
``distorted_images/`` (file-name case differs between releases: matched
case-insensitively); and the unified CSV. MOS is on the nominal 0–9 scale
(higher is better). ``source_id`` is the reference ``i01``.
"""

from __future__ import annotations

from pathlib import Path

from qprobe.errors import ManifestError
from qprobe.eval.datasets import DATASETS
from qprobe.eval.datasets._common import FileIndex, RowBuilder, Scale, is_unified_csv, read_unified, to_float
from qprobe.manifest import ManifestRow

NAME = "tid2013"
SCALE = Scale(0.0, 9.0)
DISTORTIONS = (
    "additive_gaussian_noise",
    "color_component_noise",
    "spatially_correlated_noise",
    "masked_noise",
    "high_frequency_noise",
    "impulse_noise",
    "quantization_noise",
    "gaussian_blur",
    "denoising",
    "jpeg",
    "jpeg2000",
    "jpeg_transmission_errors",
    "jpeg2000_transmission_errors",
    "non_eccentricity_pattern_noise",
    "local_block_distortions",
    "mean_shift",
    "contrast_change",
    "color_saturation_change",
    "multiplicative_gaussian_noise",
    "comfort_noise",
    "lossy_compression_of_noisy_images",
    "color_quantization_dither",
    "chromatic_aberrations",
    "sparse_sampling_reconstruction",
)


@DATASETS.register(
    NAME,
    raw_scale=(SCALE.lo, SCALE.hi),
    higher_is_better=True,
    description="TID2013 (3,000 distorted images, 24 types x 5 levels, MOS 0-9)",
    layouts=["mos_with_names.txt [+ mos_std.txt] + distorted_images/", "unified CSV"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    if is_unified_csv(path):
        return read_unified(path, NAME, SCALE, image_root)
    labels = path if path.is_file() else path / "mos_with_names.txt"
    if not labels.is_file():
        raise ManifestError(f"{path}: TID2013 label file mos_with_names.txt not found")
    entries = []
    for lineno, line in enumerate(labels.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ManifestError(f"{labels}:{lineno}: expected 'MOS NAME', got {line!r}")
        entries.append((to_float(parts[0], f"{labels}:{lineno}"), parts[1]))
    stds: list[float | None] = [None] * len(entries)
    std_file = labels.parent / "mos_std.txt"
    if std_file.is_file():
        values = [ln.strip() for ln in std_file.read_text(encoding="latin-1").splitlines() if ln.strip()]
        if len(values) != len(entries):
            raise ManifestError(f"{std_file}: {len(values)} values for {len(entries)} images in {labels}")
        stds = [to_float(v, str(std_file)) for v in values]
    index = FileIndex(image_root or labels.parent)
    b = RowBuilder(NAME, SCALE, labels)
    for (mos, name), std in zip(entries, stds):
        stem = Path(name).stem.lower()
        parts = stem.split("_")
        dist = level = None
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            k = int(parts[1])
            dist = DISTORTIONS[k - 1] if 1 <= k <= len(DISTORTIONS) else None
            level = int(parts[2])
        b.add(
            stem,
            index.find(f"distorted_images/{name}", name),
            mos,
            wanted=f"distorted_images/{name}",
            std_raw=std,
            source_id=parts[0],
            distortion=dist,
            level=level,
        )
    return b.finish()
