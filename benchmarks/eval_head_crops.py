"""The classic defect head on crops of CLIVE photos it never saw (content outside its training).

    python benchmarks/eval_head_crops.py [--weights W ...] [--clive ../shared/data/clive] [--per-image 4]

``qprobe train classic`` keeps every ``clive_holdout_every``-th CLIVE photo
(default every 5th: 164 photos) out of the defect head's training. This
script synthesizes crops of exactly those photos with
:mod:`qprobe.train_classic.synth` (a fixed seed, other than training's: one
visible defect or none, depth-of-field looks) and prints, per weight file
and operating point, false detections per negative crop and the share of
defect crops whose defect is found (IoU >= 0.3 with its damaged cells) —
the head alone, without zooms or scan agreement. The first weight file's
shipped operating point is the baseline row; every row prints its ratio of
false detections to it, measured in the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="*", default=[None], help="Weight files (default: the shipped one).")
    ap.add_argument("--clive", default="../shared/data/clive")
    ap.add_argument("--per-image", type=int, default=4)
    ap.add_argument("--every", type=int, default=5, help="The training's clive_holdout_every.")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()

    import torch

    from qprobe.backends.classic.detector import DetectorSettings, detect, softmax
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.train_classic.clive import read_clive
    from qprobe.train_classic.detector import FEATHER_FRAC
    from qprobe.train_classic.synth import CropMaker, clive_crops
    from qprobe.types import Box

    rows = read_clive(args.clive)
    held = [Path(r.path) for i, r in enumerate(rows) if i % args.every == 0]
    models = [(w or "shipped", ClassicModel.load(w)) for w in args.weights]
    first = models[0][1]
    maker = CropMaker(first.net, first.classes, 1.5, first.max_crop_side, FEATHER_FRAC)
    crops = clive_crops(maker, held, args.per_image, np.random.default_rng(args.seed))
    neg = [c for c in crops if c.negative]
    pos = [c for c in crops if (c.labels > 0).sum() >= 4]
    print(f"{len(held)} held-out CLIVE photos: {len(crops)} crops, {len(neg)} negative, {len(pos)} with a visible defect")

    def truth(labels: np.ndarray) -> Box:
        ys, xs = np.nonzero(labels > 0)
        return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))

    base_fp: float | None = None
    for name, m in models:
        n = len(m.classes)
        with torch.inference_mode():
            probs = [softmax(m.net.defect_logits(c.stem.float())[0].numpy()[:n], axis=0) for c in crops]
        points = [(m.detector.threshold, m.detector.min_cells, "shipped")] + [(0.99, 8, ""), (0.998, 8, "")]
        for thr, cells, tag in points:
            settings = DetectorSettings(thr, cells)
            found = {
                id(c): detect(p, np.full(p.shape[1:], 3.0), m.classes, Box(0, 0, p.shape[2], p.shape[1]), settings)
                for c, p in zip(crops, probs)
            }
            fp = float(np.mean([len(found[id(c)]) for c in neg])) if neg else float("nan")
            hit = float(np.mean([any(d.bbox.iou(truth(c.labels)) >= 0.3 for d in found[id(c)]) for c in pos])) if pos else float("nan")
            if base_fp is None:
                base_fp = fp
            ratio = fp / base_fp if base_fp else float("nan")
            print(f"{name}: threshold {thr} cells {cells} {tag:8s} false/neg crop {fp:.3f} (x{ratio:.2f} of baseline)  found {hit:.3f}")


if __name__ == "__main__":
    main()
