"""The benchmark builder's output (``qprobe bench build``): ``manifest.jsonl`` in the manifest schema.

``path`` is the manifest file or the folder holding ``manifest.jsonl``.
Rows are read with :func:`qprobe.manifest.read_manifest` (validated);
relative image paths are resolved against the manifest's folder. Extra keys
(``kind`` in {degraded, clean, dof}, ...) are kept; the per-degradation
breakdown of the report uses the defect types.
"""

from __future__ import annotations

from pathlib import Path

from qprobe.errors import ManifestError
from qprobe.eval.datasets import DATASETS
from qprobe.manifest import ManifestRow, read_manifest, resolve_path

NAME = "qprobe-bench"


@DATASETS.register(
    NAME,
    raw_scale=(1.0, 5.0),
    higher_is_better=True,
    description="qprobe benchmark (local degradations, clean and depth-of-field hard negatives)",
    layouts=["manifest.jsonl (qprobe manifest schema)"],
)
def load(path: Path, image_root: Path | None = None) -> list[ManifestRow]:
    manifest = path if path.is_file() else path / "manifest.jsonl"
    if not manifest.is_file():
        raise ManifestError(
            f"{path}: no benchmark manifest.jsonl found (build one with 'qprobe bench build')"
        )
    rows = read_manifest(manifest)
    base = image_root / "manifest.jsonl" if image_root is not None else manifest
    for r in rows:
        r.path = str(resolve_path(r, base))
        if r.mos_raw is None:
            r.mos_raw = r.mos
    return rows
