"""Evaluate a backend on a benchmark built from held-out photos (issue 4's "it must show").

    python benchmarks/eval_classic_bench.py BENCH_DIR [--backend classic] [--weights W] [--out OUT.json]
        [--set KEY=VALUE ...]   (backend settings, e.g. --set max_zooms=6 context_factor=1.25)

Reports, on the images of a `qprobe bench build` output folder:

* SRCC / PLCC between the score and the proxy MOS (all images);
* defect recall at IoU >= 0.3 (ground-truth defects matched by a predicted box),
  overall, per severity and per degradation type;
* false-positive defect boxes per clean and per depth-of-field image;
* with ``--seams WxH`` (mosaics from ``scripts/mosaic_photos.py``), also the
  false boxes per clean / DoF image that do not touch a tile seam;
* crop bias: mean |score with forced zooms into clean regions - score without|
  on the clean images (the forced boxes are random texture boxes);
* the same SRCC for the global regressor alone (classic only) as a baseline
  measured in the same run;
* two SRCCs that tell the global term's share from the detector's:
  ``srcc_within_photo``, the mean over photos of the SRCC among one photo's
  copies (its clean, depth-of-field and degraded images: only the damage
  differs, the content is the same), and ``srcc_oracle_defects`` (classic
  only), the SRCC the backend's own fusion would reach with its own global
  score had it found exactly the ground-truth defects (true box, type and
  severity, confidence 1): the ceiling the global score's content term
  leaves to any detector on these photos.

The photos of the benchmark must not be among the photos the weights were
trained on: the script checks the weights' training record when it can.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from qprobe.types import Defect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path)
    ap.add_argument("--backend", default="classic")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--bias-probes", type=int, default=2)
    ap.add_argument(
        "--seams",
        type=str,
        default=None,
        metavar="WxH",
        help="images are mosaics of WxH tiles (scripts/mosaic_photos.py): also count false boxes off the tile seams",
    )
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="backend settings (YAML values)")
    args = ap.parse_args()
    opts = backend_settings(args.weights, args.set)
    seams = None
    if args.seams:
        a, _, b = args.seams.lower().partition("x")
        seams = (int(a), int(b))
    result = evaluate_bench(args.bench, args.backend, opts, args.bias_probes, seams)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def backend_settings(weights: str | None, items: list[str]) -> dict[str, object]:
    """Backend options from ``--weights`` and ``--set KEY=VALUE ...`` (values read as YAML)."""
    import yaml

    opts: dict[str, object] = {"weights": weights} if weights else {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, not {item!r}")
        opts[key] = yaml.safe_load(value)
    return opts


SEAM_TOLERANCE = 32.0
"""Pixels: a false box this close to a mosaic seam counts as on it."""


def on_seam(box: object, seams: tuple[int, int], tol: float = SEAM_TOLERANCE) -> bool:
    """Whether ``box`` reaches within ``tol`` pixels of a seam of a mosaic of ``seams`` (tile width, height)."""
    import math

    def near(lo: float, hi: float, step: int) -> bool:  # a seam k * step (k >= 1) in [lo - tol, hi + tol]
        last = math.floor((hi + tol) / step)
        return last >= 1 and last >= math.ceil((lo - tol) / step)

    return near(box.x1, box.x2, seams[0]) or near(box.y1, box.y2, seams[1])  # type: ignore[attr-defined]


def evaluate_bench(
    bench: Path,
    backend: str = "classic",
    opts: dict[str, object] | None = None,
    bias_probes: int = 2,
    seams: tuple[int, int] | None = None,
) -> dict[str, object]:
    """The metrics of the module docstring for ``backend`` (settings ``opts``) on the benchmark folder ``bench``.

    ``seams``: the images are mosaics of tiles of this (width, height); false
    boxes on clean and depth-of-field images are then also counted without
    those that touch a seam (the one structure of a mosaic no photo has).
    """
    from qprobe.backends import create_backend
    from qprobe.eval.datasets import load_dataset
    from qprobe.eval.metrics import plcc, srcc
    from qprobe.types import Box

    opts = dict(opts or {})
    rows = load_dataset("qprobe-bench", bench)
    scorer = create_backend(backend, **opts)
    trained_on: set[str] = set()
    model = getattr(scorer, "model", None)
    if model is not None:
        trained_on = set(model.meta.get("detector", {}).get("bench_photos", []))
    sources = {str(r.extra.get("source_file", "")) for r in rows}
    overlap = sorted(trained_on & {Path(s).name for s in sources})
    if overlap:
        raise SystemExit(f"these benchmark photos were used in training: {overlap}")

    fusion = getattr(model, "fusion", None)  # the weights' fusion, for the oracle score
    rng = np.random.default_rng(0)
    scores, mos, glob, oracle, photo = [], [], [], [], []
    hits = n_gt = 0
    by_sev: dict[str, list[int]] = {}
    by_type: dict[str, list[int]] = {}
    fp = {"clean": [], "dof": []}
    fp_off = {"clean": [], "dof": []}
    bias = []
    t0 = time.time()
    for r in rows:
        a = scorer.assess(r.path)
        if not a.ok:
            print(f"failed: {r.path}: {a.error}")
            continue
        scores.append(a.score)
        mos.append(r.mos)
        photo.append(str(r.source_id or r.extra.get("source_file", r.path)))
        if "classic" in a.extra:
            extra = a.extra["classic"]
            glob.append(extra["s_global"])
            oracle.append(oracle_score(extra["s_global"], extra["unseen"], r.defects, a.image_size, fusion))
        kind = str(r.extra.get("kind", "degraded"))
        for gt in r.defects:
            n_gt += 1
            hit = int(any(d.bbox.iou(gt.bbox) >= 0.3 for d in a.defects))
            hits += hit
            by_sev.setdefault(str(gt.severity), []).append(hit)
            by_type.setdefault(str(gt.type), []).append(hit)
        if kind in fp:
            fp[kind].append(len(a.defects))
            if seams is not None:
                fp_off[kind].append(sum(not on_seam(d.bbox, seams) for d in a.defects))
        if kind == "clean":
            w, h = a.image_size
            side = min(w, h) // 4
            forced = []
            for _ in range(bias_probes):
                x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
                forced.append(Box(x, y, x + side, y + side))
            b = scorer.assess(r.path, forced_probes=forced)
            bias.append(abs(b.score - a.score))
    s, m = np.asarray(scores), np.asarray(mos)
    result = {
        "bench": str(bench),
        "images": len(scores),
        "photos": sorted({Path(x).name for x in sources}),
        "srcc": round(float(srcc(s, m)), 4),
        "plcc": round(float(plcc(s, m)), 4),
        "defect_recall_iou0.3": round(hits / max(n_gt, 1), 4),
        "gt_defects": n_gt,
        "recall_by_severity": {k: round(float(np.mean(v)), 3) for k, v in sorted(by_sev.items())},
        "recall_by_type": {k: round(float(np.mean(v)), 3) for k, v in sorted(by_type.items())},
        "fp_per_clean_image": round(float(np.mean(fp["clean"])) if fp["clean"] else float("nan"), 4),
        "fp_per_dof_image": round(float(np.mean(fp["dof"])) if fp["dof"] else float("nan"), 4),
        "crop_bias_mean_abs": round(float(np.mean(bias)) if bias else float("nan"), 4),
        "settings": {k: v for k, v in opts.items() if k != "weights"},
        "seconds": round(time.time() - t0, 1),
    }
    if seams is not None:
        for kind, counts in fp_off.items():
            result[f"fp_per_{kind}_image_off_seams"] = round(float(np.mean(counts)) if counts else float("nan"), 4)
    result["srcc_within_photo"] = round(within_photo_srcc(s, m, photo), 4)
    if glob and len(glob) == len(scores):
        result["srcc_global_regressor_only"] = round(float(srcc(np.asarray(glob), m)), 4)
        result["srcc_oracle_defects"] = round(float(srcc(np.asarray(oracle), m)), 4)
    return result


def oracle_score(
    s_global: float,
    unseen: float,
    defects: Sequence[Defect],
    image_size: tuple[int, int],
    fusion: Sequence[float] | None = None,
) -> float:
    """The classic fusion's score had the detector found exactly ``defects`` (confidence 1)."""
    from qprobe.backends.classic.fusion import DEFAULT_WEIGHTS, fuse, keep_factor

    found = [Defect(d.bbox, d.type, d.severity, 1.0) for d in defects]
    return fuse(s_global, keep_factor(found, image_size), fusion or DEFAULT_WEIGHTS, unseen)


def within_photo_srcc(scores: Sequence[float], mos: Sequence[float], photo: Sequence[str]) -> float:
    """Mean SRCC among the images of each photo (photos with >= 3 images and MOS that differ); NaN if none."""
    from qprobe.eval.metrics import srcc

    groups: dict[str, list[int]] = {}
    for i, p in enumerate(photo):
        groups.setdefault(p, []).append(i)
    s, m = np.asarray(scores, dtype=np.float64), np.asarray(mos, dtype=np.float64)
    per = []
    for idx in groups.values():
        if len(idx) < 3 or np.ptp(m[idx]) == 0:
            continue
        r = float(srcc(s[idx], m[idx]))
        per.append(r if np.isfinite(r) else 0.0)  # constant scores rank nothing: no agreement
    return float(np.mean(per)) if per else float("nan")


if __name__ == "__main__":
    main()
