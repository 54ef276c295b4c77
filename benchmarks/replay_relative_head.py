"""Does a head box stand out from what the head sees elsewhere in the same photo? A replay (stop 30).

    python benchmarks/replay_relative_head.py BENCH_DIR [BENCH_DIR ...] [--weights W] [--cache DIR]
        [--points 0.99/8,0.95/8,0.9/8] [--cref 0.5,0.9] [--tau 0.01,0.02,0.05] [--types ringing,...]

The scan became image-relative at stop 29: a photo whose own grain fires the
scan everywhere keeps only the blocks that stand out. This asks the same of
the defect head. A box of type T is dropped when, over the cells of the
agent's made zooms that lie outside every answer box, more than ``tau`` of
the cells have P(defect) above ``cref`` with T their most probable type: the
photo's own content (sharpening halos, grain, defocus) then looks like T
wherever the agent looked, so the box does not stand out. With ``--types``
only boxes of those types are judged.

Each benchmark is recorded once with every planned zoom
(``replay_type_cuts.episodes``, ``--cache`` keeps the records), then replayed
at each head point (``--points``: threshold / min cells; the weights' scan
agreement and growth kept) without and with the check. Prints recall at IoU
0.3 and false boxes per clean / DoF image per benchmark (the score's SRCC is
left out: the check would change the fused score, which this replay does not
recompute).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_type_cuts import episodes  # noqa: E402

Cells = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Every made zoom's cells: centre x, y (original pixels), P(defect), most probable defect class index."""


def crop_cells(made: Sequence[tuple[np.ndarray, Any]], n_classes: int) -> Cells | None:
    """The cells of the made zooms (``(maps, box)`` as ``calibrate.replay_episode`` returns them)."""
    from qprobe.backends.classic.detector import softmax

    parts: list[list[np.ndarray]] = [[], [], [], []]
    for maps, box in made:
        probs = softmax(maps[:n_classes], axis=0)
        h, w = probs.shape[1:]
        gx = box.x1 + (np.arange(w) + 0.5) * box.width / w
        gy = box.y1 + (np.arange(h) + 0.5) * box.height / h
        xs, ys = np.meshgrid(gx, gy)
        for part, values in zip(parts, (xs, ys, 1.0 - probs[0], np.argmax(probs[1:], axis=0) + 1)):
            part.append(values.ravel())
    if not parts[0]:
        return None
    x, y, p, t = (np.concatenate(part) for part in parts)
    return x, y, p, t


def outside(cells: Cells, boxes: Sequence[Any]) -> np.ndarray:
    """Which cells lie outside every box in ``boxes``."""
    x, y, _, _ = cells
    inside = np.zeros(len(x), dtype=bool)
    for b in boxes:
        inside |= (x >= b.x1) & (x < b.x2) & (y >= b.y1) & (y < b.y2)
    return ~inside


def type_share(
    cells: Cells, boxes: Sequence[Any], kind: int, cref: float, ref: np.ndarray | None = None
) -> float:
    """Share of the cells outside all ``boxes`` (or ``ref``) firing (P > ``cref``) as class ``kind``."""
    _, _, p, t = cells
    ref = outside(cells, boxes) if ref is None else ref
    return float(np.mean((p[ref] > cref) & (t[ref] == kind))) if ref.any() else 0.0


def relative_keep(
    defects: Sequence[Any],
    cells: Cells | None,
    classes: Sequence[str],
    cref: float,
    tau: float,
    types: set[str] | None = None,
) -> list[Any]:
    """The ``defects`` that stand out: their type fires on at most ``tau`` of the cells outside them all."""
    if cells is None:
        return list(defects)
    boxes = [d.bbox for d in defects]
    ref = outside(cells, boxes)  # the same reference cells for every defect of the answer
    return [
        d
        for d in defects
        if (types is not None and d.type not in types)
        or type_share(cells, boxes, list(classes).index(d.type), cref, ref) <= tau
    ]


def tally(
    model: Any, eps: Sequence[Any], rules: Sequence[tuple[float, float] | None], types: set[str] | None
) -> list[tuple[float, float, float]]:
    """(recall, false boxes per clean, per DoF image) of each rule (``None``: no check) on one benchmark."""
    from qprobe.train_classic.calibrate import replay_episode

    hits, fp_clean, fp_dof = [0] * len(rules), [[] for _ in rules], [[] for _ in rules]
    n_truth = 0
    for ep in eps:
        ans, made = replay_episode(model, ep)
        cells = crop_cells(made, len(model.classes))
        n_truth += len(ep.truth)
        for i, rule in enumerate(rules):
            kept = (
                list(ans.defects)
                if rule is None
                else relative_keep(ans.defects, cells, model.classes, *rule, types)
            )
            hits[i] += sum(any(d.bbox.iou(t) >= 0.3 for d in kept) for t in ep.truth)
            if ep.kind == "clean":
                fp_clean[i].append(len(kept))
            elif ep.kind == "dof":
                fp_dof[i].append(len(kept))
    return [
        (
            hits[i] / max(n_truth, 1),
            float(np.mean(fp_clean[i])) if fp_clean[i] else 0.0,
            float(np.mean(fp_dof[i])) if fp_dof[i] else 0.0,
        )
        for i in range(len(rules))
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument(
        "--points", default="", help="threshold/min_cells, comma-separated (default: the weights' own)"
    )
    ap.add_argument("--cref", default="0.5,0.9")
    ap.add_argument("--tau", default="0.01,0.02,0.05")
    ap.add_argument("--types", default="", help="judge only boxes of these types (default: every type)")
    args = ap.parse_args()

    from qprobe.backends import create_backend

    backend = create_backend("classic", **({"weights": args.weights} if args.weights else {}))
    model = backend.model
    recorded = {b.name: episodes(backend, b, args.cache) for b in args.bench}
    own = model.detector
    points = [("own", own)] + [
        (p, replace(own, threshold=float(p.split("/")[0]), min_cells=int(p.split("/")[1])))
        for p in args.points.split(",")
        if p
    ]
    rules: list[tuple[float, float] | None] = [None] + [
        (float(c), float(t)) for c in args.cref.split(",") for t in args.tau.split(",")
    ]
    types = set(args.types.split(",")) if args.types else None
    for name, point in points:
        model.detector = point
        try:
            res = {b: tally(model, eps, rules, types) for b, eps in recorded.items()}
        finally:
            model.detector = own
        for i, rule in enumerate(rules):
            label = "no check" if rule is None else f"cref {rule[0]} tau {rule[1]}"
            cells = []
            for b, rows in res.items():
                r, fc, fd = rows[i]
                cells.append(
                    f"{b}: {r:.3f} {fc:.2f}/{fd:.2f}" + ("" if i == 0 else f" (Δ {r - rows[0][0]:+.3f})")
                )
            print(f"{name:8s} {label:22s} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
