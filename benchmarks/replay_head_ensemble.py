"""Replay an ensemble of defect heads (stop 27): the shipped head with other heads' maps of the same zooms.

    python benchmarks/replay_head_ensemble.py BENCH_DIR [BENCH_DIR ...] --member W2 [--member W3]
        [--weights W] [--cache DIR] [--points 0.99/8,0.98/8,0.95/8]

Each weight file (the shipped one, or ``--weights``, then every ``--member``)
records each benchmark once (:func:`qprobe.train_classic.calibrate.record`:
every planned zoom; ``--cache`` keeps the records, one folder per weight
file). The members must share the first file's scan, so every file plans the
same zooms and their crops pair up one to one (checked). The replay then
combines each crop's maps — the normalized geometric mean of the heads' class
probabilities (the mean of their log-softmax), the mean of their severity
channels — and runs the first file's own detection, scan agreement, growth and
fusion on them: first the first head alone at its own point (the baseline of
the same run: the numbers of ``eval_classic_bench.py``), then the ensemble at
that point and at each of ``--points`` (head threshold / cells). Prints recall
at IoU 0.3, false boxes per clean / DoF image and SRCC per benchmark, each
with its difference from the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_type_cuts import episodes, replay_row  # noqa: E402 - the sibling script: record once, replay a row


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over axis 0 (stable)."""
    top = logits.max(axis=0, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=0, keepdims=True))


def combine_maps(maps: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """One crop's maps from several heads: class logits whose softmax is the heads' normalized geometric mean.

    Each map is ``n_classes`` class logits, one severity logit, then any recorded
    extras (the banding evidence), which come from the crop's pixels and are taken
    from the first map.
    """
    if not maps:
        raise ValueError("no maps to combine")
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"the heads' maps differ in shape: {sorted(shapes)}")
    cls = np.mean([log_softmax(m[:n_classes].astype(np.float64)) for m in maps], axis=0)
    sev = np.mean([m[n_classes].astype(np.float64) for m in maps], axis=0)
    return np.concatenate([cls, sev[None], maps[0][n_classes + 1 :]], axis=0).astype(np.float32)


def ensemble_episodes(recorded: Sequence[Sequence[Any]], n_classes: int) -> list[Any]:
    """The first file's episodes with every crop's maps combined over all files (same images, same zooms)."""
    first = recorded[0]
    if any(len(r) != len(first) for r in recorded):
        raise ValueError("the weight files recorded different numbers of episodes")
    out = []
    for group in zip(*recorded):
        crops = []
        for pair in zip(*(ep.crops for ep in group), strict=True):
            boxes = {tuple(box.to_list(None)) for _, box in pair}
            if len(boxes) != 1:
                raise ValueError("the weight files zoomed differently (do they share the scan?)")
            crops.append((combine_maps([m for m, _ in pair], n_classes), pair[0][1]))
        out.append(replace(group[0], crops=crops))
    return out


def recorded_episodes(weights: str | None, benches: Sequence[Path], cache: Path | None) -> dict[str, list[Any]]:
    """Each benchmark's recorded episodes under ``weights`` (default: the shipped file), cached per file."""
    from qprobe.backends import create_backend

    backend = create_backend("classic", **({"weights": weights} if weights else {}))  # loads only to record
    tag = hashlib.sha1(str(Path(weights).resolve() if weights else "shipped").encode()).hexdigest()[:10]
    folder = cache / tag if cache is not None else None
    return {b.name: episodes(backend, b, folder) for b in benches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--weights", default=None, help="the first head's weight file (default: the shipped one)")
    ap.add_argument("--member", action="append", required=True, help="another head's weight file (repeatable)")
    ap.add_argument("--cache", type=Path, default=None, help="folder for the recorded episodes (reused when present)")
    ap.add_argument("--points", default="0.98/8,0.95/8", help="further ensemble points: threshold/cells, comma-separated")
    args = ap.parse_args()

    from qprobe.backends import create_backend

    model = create_backend("classic", **({"weights": args.weights} if args.weights else {})).model
    n = len(model.classes)
    files = [args.weights, *args.member]
    single = recorded_episodes(args.weights, args.bench, args.cache)
    members = [recorded_episodes(w, args.bench, args.cache) for w in args.member]
    joint = {name: ensemble_episodes([eps, *(m[name] for m in members)], n) for name, eps in single.items()}
    point = model.detector

    print(f"heads: {', '.join(f or 'shipped' for f in files)}")
    base = replay_row(model, single, f"first head {point.threshold}/{point.min_cells}", None, 28)
    replay_row(model, joint, f"ensemble {point.threshold}/{point.min_cells}", base, 28)
    for item in (p for p in args.points.split(",") if p):
        thr, cells = item.split("/")
        model.detector = replace(point, threshold=float(thr), min_cells=int(cells))
        try:
            replay_row(model, joint, f"ensemble {item}", base, 28)
        finally:
            model.detector = point


if __name__ == "__main__":
    main()
