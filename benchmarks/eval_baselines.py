#!/usr/bin/env python
"""CPU cost of the three NR-IQA baselines per image, relative to decoding the image.

Measures process CPU time (robust to other load on the machine) on N CLIVE
images and projects the wall time of the README run (820 images, 3
baselines, 2 worker processes):

    python benchmarks/eval_baselines.py --images ../shared/data/clive/images --n 40
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="../shared/data/clive/images")
    ap.add_argument("--n", type=int, default=40, help="images to time")
    ap.add_argument("--total", type=int, default=820, help="images of the projected run")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from qprobe.eval.baselines import create_baseline, list_baselines
    from qprobe.io import list_images, load_rgb

    paths = list_images(args.images)[: args.n]
    scorers = {n: create_baseline(n) for n in list_baselines()}
    rgb0 = load_rgb(paths[0])
    for s in scorers.values():  # warm caches (model files, gamma tables)
        s.assess(rgb0)
    cpu = {"decode": 0.0, **{n: 0.0 for n in scorers}}
    for p in paths:
        t = time.process_time()
        rgb = load_rgb(p)
        cpu["decode"] += time.process_time() - t
        for n, s in scorers.items():
            t = time.process_time()
            s.assess(rgb)
            cpu[n] += time.process_time() - t
    per = {k: v / len(paths) for k, v in cpu.items()}
    for k, v in per.items():
        print(f"{k:8s} {1000 * v:7.1f} ms CPU/image   ratio to decode {v / per['decode']:6.1f}x")
    total = sum(per.values())
    print(
        f"all      {1000 * total:7.1f} ms CPU/image; projected {args.total} images on {args.workers} cores: "
        f"{total * args.total / args.workers:.0f} s (+ process start, metrics and report)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
