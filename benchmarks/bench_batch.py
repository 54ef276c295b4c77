"""Throughput of `qprobe batch`: 1 worker process (baseline), 2 workers, and Ray Data, same input.

    python benchmarks/bench_batch.py [--backend dummy|classic] [--images 48] [--size 1024x768]

Prints, per mode, images/s end to end (including starting the workers:
process spawn and backend creation, or Ray actors; not Ray's own cluster
start, reported separately) with its ratio to the 1-worker baseline measured
in the same run, and the start-up time (until the first result arrives).
Each mode scores the same synthetic images into a fresh output file. The
machine's load average is printed first: with other work on the cores, more
workers cannot help.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int, w: int, h: int) -> None:
    from qprobe.io import save_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        base = 120 + 60 * np.sin(xx / (40 + i) + i) * np.cos(yy / (55 + 2 * i))
        img = np.stack([base, base * 0.9 + 20, 255 - base], axis=2) + rng.normal(0, 6 + i % 5, (h, w, 3))
        save_image(folder / f"img{i:04d}.jpg", np.clip(img, 0, 255).astype(np.uint8))


def run(mode: str, src: Path, out: Path, backend: str, workers: int, chunk: int) -> dict[str, float]:
    """End-to-end rate and start-up time (to the first result)."""
    from qprobe.scale import BatchConfig, run_batch

    cfg = BatchConfig(input=str(src), out=str(out), backend=backend, workers=workers, ray=(mode == "ray"),
                      chunk_size=chunk, progress=False)
    stamps: list[float] = []
    t0 = time.perf_counter()
    summary = run_batch(cfg, on_row=lambda row: stamps.append(time.perf_counter()))
    elapsed = time.perf_counter() - t0
    if summary.failed:
        raise SystemExit(f"{mode}: {summary.failed} images failed")
    return {"rate": summary.scored / elapsed, "startup": stamps[0] - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="dummy")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the synthetic images")
    ap.add_argument("--chunk-size", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "images"
        src.mkdir()
        make_images(src, args.images, w, h)
        modes = [("1 worker", "local", 1), ("2 workers", "local", 2)]
        if not args.no_ray:
            modes.append(("ray, 2 actors", "ray", 2))
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"backend {args.backend}, {args.images} images of {w}x{h}, chunk {args.chunk_size}; "
              f"{os.cpu_count()} CPUs, load average {load}")
        results = {}
        for label, mode, workers in modes:
            if mode == "ray":
                import ray

                t0 = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
                print(f"(ray.init: {time.perf_counter() - t0:.1f} s, not counted)")
            results[label] = run(mode, src, Path(tmp) / f"{label.replace(' ', '_')}.jsonl", args.backend,
                                 workers, args.chunk_size)
        base = results["1 worker"]
        print(f"{'mode':<16}{'images/s':>10}{'vs 1 worker':>13}{'start-up s':>12}")
        for label, r in results.items():
            print(f"{label:<16}{r['rate']:>10.2f}{r['rate'] / base['rate']:>12.2f}x{r['startup']:>12.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
