"""Replay the classic detector with a second, lower cut for some defect types (stop 26), against the shipped point.

    python benchmarks/replay_type_cuts.py BENCH_DIR [BENCH_DIR ...] [--weights W] [--cache DIR]
        [--types haze,gaussian_blur,motion_blur,smear] [--cuts 0.98,0.95,0.9,0.8] [--cells 8,16]

Each benchmark is run once with every planned zoom recorded
(:func:`qprobe.train_classic.calibrate.record`; ``--cache`` keeps the records
for the next run), then replayed without the network: first at the weights'
own operating point (the baseline, the same numbers as
``eval_classic_bench.py``), then with a second detection pass at each lower
cut that keeps only components of ``--types`` and joins the first pass's
defects. Prints recall at IoU 0.3, false boxes per clean / DoF image and SRCC
per benchmark, each with its difference from the baseline of the same run.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


def two_pass(model: Any, types: Sequence[str], cut: float, cells: int) -> Callable[..., list[Any]]:
    """``model.detections_from_maps`` plus the components of ``types`` found at ``cut`` (at least ``cells`` cells).

    The second pass is the model's own ``detections_from_maps`` at the lower point (same
    probabilities, severity, banding check and ``confirm``), keeping only ``types``.
    """
    first = model.detections_from_maps
    point = model.detector
    low = replace(point, threshold=cut, min_cells=cells)
    wanted = set(types)

    def detections(maps: np.ndarray, box: Any, lattice: Any = None, confirm: Any = None) -> list[Any]:
        out = first(maps, box, lattice, confirm)
        if cut >= point.threshold:
            return out
        model.detector = low
        try:
            extra = [d for d in first(maps, box, lattice, confirm) if d.type in wanted]
        finally:
            model.detector = point
        return out + extra

    return detections


def episodes(backend: Any, bench: Path, cache: Path | None) -> list[Any]:
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic.calibrate import record

    path = cache / f"{bench.name}.pkl" if cache is not None else None
    if path is not None and path.is_file():
        with path.open("rb") as f:
            return pickle.load(f)
    eps = record(backend, load_dataset("qprobe-bench", bench))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump(eps, f)
    return eps


def replay_row(
    model: Any, recorded: dict[str, list[Any]], label: str, base: dict[str, dict[str, Any]] | None, width: int = 24
) -> dict[str, dict[str, Any]]:
    """Replay each benchmark's episodes at ``model``'s current point; print one row (with the change from ``base``)."""
    from qprobe.train_classic.calibrate import replay

    res = {name: replay(model, eps) for name, eps in recorded.items()}
    cells = []
    for name, r in res.items():
        text = f"{name}: recall {r['recall']:.3f} fp {r['fp_clean']:.2f}/{r['fp_dof']:.2f} srcc {r['srcc'] or 0:.3f}"
        if base is not None:
            b = base[name]
            text += f" (Δ {r['recall'] - b['recall']:+.3f}, {r['fp_clean'] - b['fp_clean']:+.2f}/{r['fp_dof'] - b['fp_dof']:+.2f})"
        cells.append(text)
    print(f"{label:{width}s} | " + " | ".join(cells), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the recorded episodes (reused when present)")
    ap.add_argument("--types", default="haze,gaussian_blur,motion_blur,smear")
    ap.add_argument("--cuts", default="0.98,0.95,0.9,0.8")
    ap.add_argument("--cells", default="8,16")
    args = ap.parse_args()

    from qprobe.backends import create_backend

    backend = create_backend("classic", **({"weights": args.weights} if args.weights else {}))
    model = backend.model
    recorded = {b.name: episodes(backend, b, args.cache) for b in args.bench}
    shipped = model.detections_from_maps
    types = [t for t in args.types.split(",") if t]

    p = model.detector
    base = replay_row(model, recorded, f"shipped {p.threshold}/{p.min_cells}", None)
    for cut in (float(c) for c in args.cuts.split(",")):
        for cells in (int(c) for c in args.cells.split(",")):
            model.detections_from_maps = two_pass(model, types, cut, cells)
            replay_row(model, recorded, f"+ {','.join(t[:5] for t in types)} {cut}/{cells}", base)
            model.detections_from_maps = shipped


if __name__ == "__main__":
    main()
