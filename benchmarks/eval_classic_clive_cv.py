"""CLIVE k-fold cross-validation of the full classic pipeline, baselines side by side.

    python benchmarks/eval_classic_clive_cv.py RUN_DIR [--clive ../shared/data/clive] [--baselines niqe brisque]

``RUN_DIR`` is the output folder of ``qprobe train classic`` (it holds
``cv/splits/fold<k>.txt`` and ``cv/fold<k>.pt``: weights whose regressor was
trained on the other folds only). Each fold's images are scored by the
classic backend with that fold's weights and by the baselines, through
``qprobe.eval.runner.evaluate`` (predictions cached under RUN_DIR/cv/eval,
per fold, and set aside when that fold's weight file changes);
the printed metrics pool the out-of-fold predictions of all folds
(|SRCC|, |PLCC|: NIQE and BRISQUE are lower-is-better).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--clive", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "clive")
    ap.add_argument("--baselines", nargs="*", default=["niqe", "brisque"])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.eval.datasets import load_dataset
    from qprobe.eval.datasets.splits import read_splits
    from qprobe.eval.metrics import plcc, srcc
    from qprobe.eval.runner import evaluate

    rows = {r.id: r for r in load_dataset("clive", args.clive)}
    splits = read_splits(args.run / "cv" / "splits")
    pooled: dict[str, tuple[list[float], list[float]]] = {}
    for name in sorted(splits):
        fold_rows = [rows[i] for i in splits[name]]
        weights = args.run / "cv" / f"{name}.pt"
        # predictions cached there are reused only by the same weights (the runner checks the scorer's
        # identity, weight digest included, and moves other predictions aside)
        cache = args.run / "cv" / "eval" / name
        scorer = ClassicBackend(weights=str(weights))
        result = evaluate(
            [scorer, *args.baselines], fold_rows, cache,
            workers=args.workers, n_boot=0, progress=False,
        )
        for sname, res in result.scorers.items():
            preds, mos = pooled.setdefault(sname, ([], []))
            by_path = {str(rec.get("path")): rec for rec in res.records}
            for r in fold_rows:
                rec = by_path.get(str(r.path))
                if rec is not None and rec.get("score") is not None:
                    preds.append(float(rec["score"]))
                    mos.append(float(r.mos))
        print(f"{name}: " + ", ".join(f"{s} srcc {result.metric(s, 'srcc')}" for s in result.scorers), flush=True)
    summary = {}
    for sname, (p, m) in pooled.items():
        pa, ma = np.asarray(p), np.asarray(m)
        summary[sname] = {"n": len(p), "srcc": round(float(abs(srcc(pa, ma))), 4), "plcc": round(float(abs(plcc(pa, ma))), 4)}
    print(json.dumps({"clive_folds": len(splits), "pooled_out_of_fold": summary}, indent=2))
    (args.run / "cv" / "eval" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
