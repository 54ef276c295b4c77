"""Where the classic backend loses each defect it misses: the stage, per benchmark and per type (stop 29).

    python benchmarks/where_misses_go.py BENCH_DIR [BENCH_DIR ...] [--weights W] [--cache DIR]
        [--set KEY=VALUE ...] [--list]

Each benchmark is run once with every planned zoom recorded (as
``replay_type_cuts.py`` does; ``--cache`` keeps the records, one folder per
backend setting) and replayed at the weights' own operating point, which
gives the numbers of ``eval_classic_bench.py``. Every ground-truth defect no
answer box matches at IoU 0.3 is then put in the first stage that lost it:

* ``low IoU``: a box overlaps it, with IoU < 0.3 (a fragment, or grown too far);
* zoomed (a made zoom's crop holds >= 90 % of it), and the head ``silent`` there
  (no cell above the detector's cut inside the box) or ``fired`` (a cell above
  the cut, but no kept box: too few cells, no scan agreement, no detail around
  a blur-type box);
* ``partly zoomed``: the made crops hold part of it;
* never zoomed, the scan ``above`` the agreement threshold somewhere inside it
  (the zoom budget went elsewhere) or ``below`` it everywhere (no made zoom could
  have kept it).

Prints the counts per benchmark and pooled, and per degradation type;
``--list`` also prints every miss (image, type, severity, scan peak, head peak).
A diagnostic: it reads the ground truth, so nothing it shows is a result.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_type_cuts import episodes  # noqa: E402

STAGES = (
    "low IoU",
    "zoomed, head silent",
    "zoomed, head fired",
    "partly zoomed",
    "never, scan above",
    "never, scan below",
)
COVERED = 0.9  # share of a defect a made crop must hold for it to count as zoomed
IOU = 0.3


def _covered(truth: Any, box: Any) -> float:
    return truth.intersection(box) / truth.area if truth.area > 0 else 0.0


def _head_peak(maps: np.ndarray, crop: Any, truth: Any, n_classes: int) -> float:
    """The head's highest P(defect) (1 - P(clean)) over the cells of ``maps`` inside ``truth``."""
    from qprobe.backends.classic.detector import softmax

    h, w = maps.shape[1:]
    sx, sy = crop.width / float(w), crop.height / float(h)
    x1, x2 = int(max(0, (truth.x1 - crop.x1) / sx)), int(min(w, np.ceil((truth.x2 - crop.x1) / sx)))
    y1, y2 = int(max(0, (truth.y1 - crop.y1) / sy)), int(min(h, np.ceil((truth.y2 - crop.y1) / sy)))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    probs = softmax(maps[:n_classes, y1:y2, x1:x2], axis=0)
    return float((1.0 - probs[0]).max())


def misses(model: Any, eps: list[Any], rows: list[Any]) -> tuple[int, list[dict[str, Any]]]:
    """(defects, one record per missed defect) of recorded ``eps`` replayed at ``model``'s operating point."""
    from qprobe.backends.classic.proposals import box_cells
    from qprobe.train_classic.calibrate import replay_episode

    n_classes = len(model.classes)
    agree = float(getattr(model, "agree_threshold", model.scan_threshold))
    total, out = 0, []
    for ep, row in zip(eps, rows, strict=True):
        answer, made = replay_episode(model, ep)  # the zooms the live policy makes (confirmable_only)
        for truth, label in zip(ep.truth, row.defects, strict=True):
            total += 1
            best = max((d.bbox.iou(truth) for d in answer.defects), default=0.0)
            if best >= IOU:
                continue
            cover = max((_covered(truth, box) for _, box in made), default=0.0)
            head = max((_head_peak(m, box, truth, n_classes) for m, box in made), default=0.0)
            scan = float(ep.prob[box_cells(truth, ep.scan.cell, ep.prob.shape)].max()) if ep.prob is not None else 0.0
            if best > 0:
                stage = "low IoU"
            elif cover >= COVERED:
                stage = "zoomed, head fired" if head > model.detector.threshold else "zoomed, head silent"
            elif cover > 0:
                stage = "partly zoomed"
            else:
                stage = "never, scan above" if scan > agree else "never, scan below"
            out.append(
                {
                    "id": row.id,
                    "type": label.type,
                    "severity": label.severity,
                    "stage": stage,
                    "iou": round(best, 3),
                    "scan": round(scan, 3),
                    "head": round(head, 4),
                    "covered": round(cover, 2),
                }
            )
    return total, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the recorded episodes (reused when present)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="backend settings (YAML values)")
    ap.add_argument("--list", action="store_true", help="also print every miss")
    args = ap.parse_args()

    import yaml

    from qprobe.backends import create_backend
    from qprobe.eval.datasets import load_dataset

    opts: dict[str, Any] = {"weights": args.weights} if args.weights else {}
    for item in args.set:
        key, _, value = item.partition("=")
        opts[key] = yaml.safe_load(value)
    backend = create_backend("classic", **opts)
    pooled: Counter[str] = Counter()
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    n_type: Counter[str] = Counter()
    all_total, every = 0, []
    print(f"{'benchmark':16s} {'defects':>7s} {'missed':>6s}  " + "  ".join(f"{s:>19s}" for s in STAGES))
    for bench in args.bench:
        rows = list(load_dataset("qprobe-bench", bench))
        total, missed = misses(backend.model, episodes(backend, bench, args.cache), rows)
        counts = Counter(m["stage"] for m in missed)
        print(f"{bench.name:16s} {total:7d} {len(missed):6d}  " + "  ".join(f"{counts[s]:19d}" for s in STAGES))
        pooled.update(counts)
        all_total += total
        for row in rows:
            n_type.update(d.type for d in row.defects)
        for m in missed:
            by_type[m["type"]][m["stage"]] += 1
            every.append((bench.name, m))
    if len(args.bench) > 1:
        print(f"{'pooled':16s} {all_total:7d} {sum(pooled.values()):6d}  " + "  ".join(f"{pooled[s]:19d}" for s in STAGES))
    print(f"\n{'type':16s} {'defects':>7s} {'missed':>6s}  " + "  ".join(f"{s:>19s}" for s in STAGES))
    for kind in sorted(n_type):
        c = by_type[kind]
        print(f"{kind:16s} {n_type[kind]:7d} {sum(c.values()):6d}  " + "  ".join(f"{c[s]:19d}" for s in STAGES))
    if args.list:
        print()
        for name, m in sorted(every, key=lambda x: (x[1]["stage"], x[1]["type"], x[0])):
            print(f"{name}  {m['id']}  {m['type']} s{m['severity']}  {m['stage']}  IoU {m['iou']}  scan {m['scan']}"
                  f"  head {m['head']}  covered {m['covered']}")


if __name__ == "__main__":
    main()
