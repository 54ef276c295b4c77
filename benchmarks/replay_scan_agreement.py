"""Replay the classic detector under other scan agreements, or with another scan model (stop 33).

    python benchmarks/replay_scan_agreement.py BENCH_DIR [BENCH_DIR ...] --cache DIR
        [--agree 0.95,0.9,0.85,0.8,0.7] [--scan-model FILE.json ...] [--all-zooms]
    python benchmarks/replay_scan_agreement.py --train-scan BUILD_DIR --out FILE.json [--hidden 16] [--seed 0]

A defect the head finds is kept only where the native-resolution scan also
flags a block inside its box (the *agreement*, ``agree_threshold``), and the
kept box grows over the scan's blobs at that level. Each benchmark is
recorded once with every planned zoom (as ``replay_type_cuts.py`` does;
``--cache`` keeps the records) and replayed at each agreement of ``--agree``:
recall at IoU 0.3 and false boxes per clean / DoF image per benchmark, then
pooled per family of sets (benchmarks named ``held*``, ``fresh*``, others).

``--scan-model`` replays with another scan model (the JSON that
``--train-scan`` writes: the training stage's ``train_scan`` on a build's
blocks): its probabilities are computed from each episode's recorded scan
features, made image-relative as the live policy does, and replace the
recorded ones for the agreement and the extents. The zooms stay the recorded
ones (planned with the shipped scan), so the comparison isolates what the
scan decides after the crops. ``--all-zooms`` makes every recorded zoom,
including those the live policy leaves out because no scan block in them
passes the agreement.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_type_cuts import episodes


def rescan(ep: Any, scan_model: dict[str, Any], max_share: float | None) -> Any:
    """A copy of ``ep`` with the scan probabilities of ``scan_model``, computed as the live policy does."""
    from qprobe.backends.classic.scan import relative_probability_map

    out = copy.copy(ep)
    if ep.scan is None:
        return out
    hidden = scan_model.get("hidden")
    out.prob, _, _ = relative_probability_map(
        ep.scan,
        np.asarray(scan_model["weights"], dtype=np.float32),
        None if hidden is None else np.asarray(hidden, dtype=np.float32),
        float(scan_model["threshold"]),
        int(scan_model.get("radius", 3)),
        max_share,
    )
    return out


def family(name: str) -> str:
    return "held-out" if name.startswith("held") else ("fresh" if name.startswith("fresh") else "other")


def sweep(
    model: Any, recorded: dict[str, list[Any]], agrees: Sequence[float], label: str, all_zooms: bool = False
) -> list[dict[str, Any]]:
    """Replay every benchmark at each agreement; print one line per agreement; return the rows."""
    from qprobe.train_classic.calibrate import replay

    own = model.agree_threshold
    rows = []
    try:
        for a in agrees:
            model.agree_threshold = a
            found: dict[str, int] = {}
            false: dict[str, int] = {}
            cells = []
            for name, eps in recorded.items():
                r = replay(model, eps, confirmable_only=not all_zooms)
                cells.append(f"{name} {r['recall']:.3f} {r['fp_clean']:.2f}/{r['fp_dof']:.2f}")
                fam = family(name)
                found[fam] = found.get(fam, 0) + round(r["recall"] * r["defects"])
                n_clean = sum(ep.kind == "clean" for ep in eps)
                n_dof = sum(ep.kind == "dof" for ep in eps)
                false[fam] = false.get(fam, 0) + round(r["fp_clean"] * n_clean + r["fp_dof"] * n_dof)
            pooled = " | ".join(f"{f} found {found[f]} false {false[f]}" for f in sorted(found))
            print(f"{label} agree {a:.2f}: " + " | ".join(cells) + f" || {pooled}", flush=True)
            rows.append({"agree": a, "found": found, "false": false})
    finally:
        model.agree_threshold = own
    return rows


def train_scan_model(build: Path, out: Path, hidden: int, seed: int) -> dict[str, Any]:
    """The training stage's scan model, trained on the blocks of ``build`` (features cached beside it)."""
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic import detector as det

    cache = build / "scan_blocks.npz"
    if cache.is_file():
        z = np.load(cache)
        x, y = z["x"], z["y"]
    else:
        x, y = det.scan_examples(list(load_dataset("qprobe-bench", build)), cell=32, radius=3)
        np.savez(cache, x=x, y=y)
    model = det.train_scan(x, y, hidden=hidden, seed=seed)
    model.update({"cell": 32, "radius": 3})
    out.write_text(json.dumps(model))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="*")
    ap.add_argument("--weights", default=None)
    ap.add_argument(
        "--cache", type=Path, default=None, help="folder for the recorded episodes (reused when present)"
    )
    ap.add_argument("--agree", default="0.95,0.9,0.85,0.8,0.7")
    ap.add_argument(
        "--scan-model", type=Path, nargs="*", default=[], help="scan models (JSON) to replay with"
    )
    ap.add_argument("--all-zooms", action="store_true", help="make every recorded zoom")
    ap.add_argument(
        "--train-scan", type=Path, default=None, help="a benchmark build to train a scan model on"
    )
    ap.add_argument("--out", type=Path, default=None, help="where --train-scan writes the model")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.train_scan is not None:
        if args.out is None:
            ap.error("--train-scan needs --out")
        train_scan_model(args.train_scan, args.out, args.hidden, args.seed)
        return
    if not args.bench:
        ap.error("give at least one benchmark folder (or --train-scan)")

    from qprobe.backends import create_backend

    backend = create_backend("classic", **({"weights": args.weights} if args.weights else {}))
    model = backend.model
    recorded = {b.name: episodes(backend, b, args.cache) for b in args.bench}
    agrees = [float(a) for a in args.agree.split(",") if a]
    sweep(model, recorded, agrees, "shipped scan", args.all_zooms)
    own_threshold = model.scan_threshold
    for path in args.scan_model:
        scan_model = json.loads(path.read_text())
        rescanned = {
            n: [rescan(ep, scan_model, backend.config.max_scan_share) for ep in eps]
            for n, eps in recorded.items()
        }
        model.scan_threshold = float(scan_model["threshold"])
        try:
            sweep(model, rescanned, agrees, path.stem, args.all_zooms)
        finally:
            model.scan_threshold = own_threshold


if __name__ == "__main__":
    main()
