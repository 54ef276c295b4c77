"""Fixtures shared by the eval tests: a tiny benchmark on disk and a fake probing backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from qprobe.io import load_rgb
from qprobe.manifest import DefectLabel, ManifestRow, write_manifest
from qprobe.types import Assessment, Box, Defect

try:
    from conftest import make_texture
except ImportError:  # pragma: no cover - pytest puts tests/ on sys.path
    from tests.conftest import make_texture

W, H = 256, 192
NOISE_BOX = Box(96, 64, 160, 128)


def make_bench(root: Path, n_sources: int = 3) -> list[ManifestRow]:
    """Per source photo: a clean image, a degraded one (strong noise in NOISE_BOX) and a DoF one."""
    rows = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for s in range(n_sources):
        clean = make_texture(H, W, seed=s)
        noisy = clean.astype(np.float32)
        x1, y1, x2, y2 = NOISE_BOX.to_int()
        rng = np.random.default_rng(s)
        noisy[y1:y2, x1:x2] += rng.normal(0, 60, (y2 - y1, x2 - x1, 3))
        noisy = np.clip(noisy, 0, 255).astype(np.uint8)
        dof = np.asarray(Image.fromarray(clean).filter(ImageFilter.GaussianBlur(3)))
        for kind, arr, mos, defects in (
            ("clean", clean, 4.6, []),
            ("degraded", noisy, 2.2 + 0.3 * s, [DefectLabel(NOISE_BOX, "noise", 4)]),
            ("dof", dof, 4.3, []),
        ):
            rid = f"s{s}_{kind}"
            Image.fromarray(arr).save(root / "images" / f"{rid}.png")
            rows.append(
                ManifestRow(
                    rid,
                    f"images/{rid}.png",
                    "qprobe-bench",
                    "test",
                    W,
                    H,
                    mos=mos,
                    defects=defects,
                    source_id=f"s{s}",
                    dof=kind == "dof",
                    extra={"kind": kind},
                )
            )
    write_manifest(root / "manifest.jsonl", rows)
    return rows


class FakeProber:
    """Flags 32x32 blocks whose high-frequency energy is far above the median as "noise" defects.

    Score = 5 - 1.5 * (share of flagged blocks) * 10, minus ``crop_penalty`` when
    probes are forced (a deliberately crop-biased scorer). Probes = forced
    boxes, else the flagged blocks; one defect box around the flagged blocks.
    """

    name = "fake"

    def __init__(self, crop_penalty: float = 0.5, fail_ids: tuple[str, ...] = ()) -> None:
        self.crop_penalty = crop_penalty
        self.fail_ids = fail_ids

    def assess(
        self,
        image: Any,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment:
        if path is not None and any(f in path for f in self.fail_ids):
            return Assessment(score=None, backend=self.name, path=path, error="parse: no <answer> in output")
        rgb = load_rgb(image).astype(np.float32)
        g = rgb.mean(axis=2)
        hf = np.abs(g[1:-1, 1:-1] * 4 - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
        hf = np.pad(hf, 1)
        h, w = g.shape
        blocks = []
        for y in range(0, h - 31, 32):
            for x in range(0, w - 31, 32):
                blocks.append((float(hf[y : y + 32, x : x + 32].mean()), x, y))
        med = float(np.median([b[0] for b in blocks]))
        flagged = [Box(x, y, x + 32, y + 32) for e, x, y in blocks if e > 3.0 * med]
        defects = []
        if flagged:  # one box around the flagged blocks
            defects = [
                Defect(
                    Box(
                        min(b.x1 for b in flagged),
                        min(b.y1 for b in flagged),
                        max(b.x2 for b in flagged),
                        max(b.y2 for b in flagged),
                    ),
                    "noise",
                    3,
                    0.9,
                )
            ]
        score = 5.0 - 15.0 * len(flagged) / len(blocks)
        if forced_probes:
            score -= self.crop_penalty
        probes = list(forced_probes) if forced_probes else flagged
        return Assessment(
            score=max(1.0, score),
            defects=defects,
            probes=probes,
            backend=self.name,
            path=path,
            image_size=(w, h),
        )
