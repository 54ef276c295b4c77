"""How much of the classic backend's recall is lost to *where* it zooms, and how much to what it sees there.

    python benchmarks/eval_oracle_zooms.py BENCH_DIR [BENCH_DIR ...] [--weights W] [--set KEY=VALUE ...]

For every image of each `qprobe bench build` folder, in the same run:

* the agent as shipped (its own zooms);
* the same agent with one extra forced zoom on every true defect (a square
  box on the defect's centre, as large as the defect and at least the
  agent's zoom side, enlarged for context by the environment as any zoom),
  on top of its own zooms: the recall the detector and the scan agreement
  reach when placement is perfect.

Prints recall at IoU >= 0.3 for both, their ratio, and the oracle's recall
per degradation type (what the detector cannot find even when zoomed
there). The oracle boxes use the truth, so this is a diagnostic, not a score.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def oracle_boxes(row: object, zoom_side: float) -> list[object]:
    """One square zoom box per true defect of ``row``: centred on it, at least ``zoom_side`` wide."""
    from qprobe.types import Box

    out = []
    for t in row.defects:  # type: ignore[attr-defined]
        g = t.bbox
        side = max(g.width, g.height, zoom_side)
        cx, cy = (g.x1 + g.x2) / 2.0, (g.y1 + g.y2) / 2.0
        out.append(Box(cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="backend settings (YAML values)")
    args = ap.parse_args()
    from eval_classic_bench import backend_settings  # this folder is on the path when run as a script

    from qprobe.backends import create_backend
    from qprobe.eval.datasets import load_dataset

    backend = create_backend("classic", **backend_settings(args.weights, args.set))
    zoom_side = float(backend.config.zoom_side)
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    oracle: Counter[str] = Counter()
    print(f"{'benchmark':<28} {'defects':>7} {'own zooms':>10} {'+ oracle':>9} {'own / oracle':>13}")
    for bench in args.bench:
        n = h_own = h_or = 0
        for row in load_dataset("qprobe-bench", bench):
            if not row.defects:
                continue
            a = backend.assess(row.path)
            b = backend.assess(row.path, forced_probes=oracle_boxes(row, zoom_side))
            for t in row.defects:
                n += 1
                hit_own = any(d.bbox.iou(t.bbox) >= 0.3 for d in a.defects)
                hit_or = any(d.bbox.iou(t.bbox) >= 0.3 for d in b.defects)
                h_own += hit_own
                h_or += hit_or
                total[t.type] += 1
                own[t.type] += hit_own
                oracle[t.type] += hit_or
        r_own, r_or = h_own / max(n, 1), h_or / max(n, 1)
        ratio = r_own / r_or if r_or else float("nan")
        print(f"{bench.name:<28} {n:>7} {r_own:>10.3f} {r_or:>9.3f} {ratio:>13.2f}")
    n_all = sum(total.values())
    r_own, r_or = sum(own.values()) / max(n_all, 1), sum(oracle.values()) / max(n_all, 1)
    print(f"{'pooled':<28} {n_all:>7} {r_own:>10.3f} {r_or:>9.3f} {r_own / r_or if r_or else float('nan'):>13.2f}")
    print("\nper type (pooled): found with own zooms / with oracle zooms / defects")
    for kind in sorted(total):
        print(f"  {kind:<16} {own[kind]:>3} / {oracle[kind]:>3} / {total[kind]:>3}")


if __name__ == "__main__":
    main()
