"""How far the classic detector reaches beyond its training types: unseen vs seen degradations, one run.

    python benchmarks/eval_unseen_degradations.py PHOTOS OUT [--variants 5] [--seed 53] [--workers 2]
        [--backend classic] [--weights W]

Builds two benchmarks from the same held-out photos, with the same recipe
and seed (``qprobe bench build`` semantics, minimum visible change included):
``OUT/seen`` with the package's ten degradation types (what the shipped head
was trained on) and ``OUT/unseen`` with the six families of
``benchmarks/unseen_degradations.py`` (impulse noise, oversharpening, colour
cast, chromatic aberration, median smoothing, posterization), then evaluates
both exactly as ``eval_classic_bench.py`` does and prints each metric side
by side with the unseen / seen ratio, and recall per unseen type (with the
training type it is nearest to, where there is one). Writes
``OUT/unseen_vs_seen.json``. Re-running resumes both builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import unseen_degradations  # noqa: E402  (registers the unseen families)
from eval_classic_bench import evaluate_bench  # noqa: E402

METRICS = (
    ("defect_recall_iou0.3", "defect recall @ IoU 0.3"),
    ("srcc", "SRCC vs proxy MOS"),
    ("plcc", "PLCC vs proxy MOS"),
    ("fp_per_clean_image", "false boxes / clean image"),
    ("fp_per_dof_image", "false boxes / DoF image"),
    ("crop_bias_mean_abs", "crop bias |d score|"),
)


def build(photos: Path, out: Path, names: list[str], variants: int, seed: int, workers: int) -> None:
    from qprobe.bench.builder import build as build_bench
    from qprobe.bench.config import BenchConfig

    cfg = BenchConfig(
        photos=str(photos), out=str(out), variants=variants, seed=seed, workers=workers, degradations=names
    )
    summary = build_bench(cfg)
    if summary.errors:
        raise SystemExit(f"building {out} failed: {summary.errors[:3]}")
    print(f"built {out}: {summary.built} new, {summary.reused} reused"
          + (f", {len(summary.skipped_items)} skipped (no visible change)" if summary.skipped_items else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path, help="held-out pristine photos (none the weights were trained on)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--variants", type=int, default=5)
    ap.add_argument("--seed", type=int, default=53)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default="classic")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--bias-probes", type=int, default=2)
    args = ap.parse_args()
    from qprobe.bench.degradations import DEGRADATIONS, list_degradations

    unseen = list(unseen_degradations.UNSEEN)
    seen = [n for n in list_degradations() if n not in unseen]
    opts: dict[str, object] = {"weights": args.weights} if args.weights else {}
    results = {}
    for tag, names in (("seen", seen), ("unseen", unseen)):
        build(args.photos, args.out / tag, names, args.variants, args.seed, args.workers)
        results[tag] = evaluate_bench(args.out / tag, args.backend, opts, args.bias_probes)
    s, u = results["seen"], results["unseen"]
    print(f"\n{'metric':<28}{'seen (10 types)':>16}{'unseen (6 types)':>18}{'unseen / seen':>15}")
    print(f"{'images / defects':<28}{s['images']:>10} / {s['gt_defects']:<3}{u['images']:>12} / {u['gt_defects']:<3}")
    for key, label in METRICS:
        a, b = float(s[key]), float(u[key])  # type: ignore[arg-type]
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{label:<28}{a:>16.3f}{b:>18.3f}{ratio:>15}")
    print("\nrecall per unseen type:")
    for name, recall in u["recall_by_type"].items():  # type: ignore[union-attr]
        near = DEGRADATIONS.metadata(name).get("near") or "-"
        print(f"  {name:<30} {recall:.3f}   (nearest training type: {near})")
    (args.out / "unseen_vs_seen.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
