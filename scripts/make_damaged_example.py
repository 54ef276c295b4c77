"""Make the README's locally damaged sample: ``examples/damaged/TwoWings_damaged.jpg``.

Two texture-rich regions of ``examples/photos/TwoWings.jpg`` get one local
degradation each (the benchmark builder's own region selection and injection),
and the ground-truth boxes go to ``TwoWings_damaged.json``. Deterministic::

    python scripts/make_damaged_example.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qprobe.bench.inject import inject_local
from qprobe.bench.regions import select_regions, texture_map
from qprobe.io import load_rgb, save_image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "photos" / "TwoWings.jpg"
OUT = ROOT / "examples" / "damaged" / "TwoWings_damaged.jpg"
RECIPE = (("gaussian_noise", 4), ("smear", 5))


def main() -> None:
    img = load_rgb(SOURCE)
    rng = np.random.default_rng(2026)
    regions = select_regions(texture_map(img), n=len(RECIPE), rng=rng, min_area=0.01, max_area=0.03)
    defects = []
    for region, (name, severity) in zip(regions, RECIPE):
        img, defect = inject_local(img, region.box, name, severity, seed=rng)
        defects.append(defect.to_dict())
    save_image(OUT, img, quality=95)
    OUT.with_suffix(".json").write_text(
        json.dumps({"source": "examples/photos/TwoWings.jpg", "defects": defects}, indent=2) + "\n"
    )
    print(f"wrote {OUT} with {len(defects)} defects: {[d['type'] for d in defects]}")


if __name__ == "__main__":
    main()
