"""Analyses of the probing method (DESIGN §2.5), for any scorer that returns defects and probes.

All work on manifest rows (usually the benchmark: ``defects`` = ground-truth
boxes, ``kind`` in {degraded, clean, dof}) and a scorer following the
Backend contract (``assess(image, path=..., forced_probes=..., seed=...)``):

* **crop bias** — score of clean content with vs. without forced zooms into
  clean regions (a scorer that learned "a crop means damage" drops);
* **depth-of-field false positives** — share of DoF images (natural blur
  labelled clean) with predicted defects, next to the same share on clean images;
* **localization** — per ground-truth box the best IoU with a predicted
  defect box; mean IoU, recall at IoU 0.3 and 0.5, false-positive boxes per
  clean image;
* **crop coverage** — share of defect area inside the union of probes vs.
  share of image area probed (probing should concentrate on damage);
* **occlusion** — replace each defect region by the clean source (the clean
  twin of the same source photo) and check the score recovers; mask a clean
  region of the same size (filled with its mean colour, the usual occluder)
  and check the score moves much less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qprobe._fs import atomic_write_json, atomic_write_text
from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow
from qprobe.types import Assessment, Box

IOU_THRESHOLDS = (0.3, 0.5)


def row_kind(row: ManifestRow) -> str:
    """``degraded`` / ``clean`` / ``dof`` from the manifest, ``unknown`` for rows without such labels.

    The ``kind`` extra key wins; otherwise the dof flag and defect boxes
    decide. Rows of other datasets (authentic photos with unknown damage)
    are ``unknown``: treating them as clean would make the analyses lie.
    """
    kind = row.extra.get("kind")
    if kind in ("degraded", "clean", "dof"):
        return str(kind)
    if row.dof:
        return "dof"
    if row.defects:
        return "degraded"
    return "clean" if row.dataset == "qprobe-bench" else "unknown"


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


# -- localization -------------------------------------------------------------------


def best_ious(gt: Sequence[Box], pred: Sequence[Box]) -> list[float]:
    """For each ground-truth box the best IoU with any predicted box (0 without predictions)."""
    return [max((g.iou(p) for p in pred), default=0.0) for g in gt]


def localization(rows: Sequence[ManifestRow], assessments: Sequence[Assessment]) -> dict[str, Any]:
    ious: list[float] = []
    fp_clean: list[int] = []
    n_failed = 0
    for row, a in zip(rows, assessments):
        if not a.ok:
            n_failed += 1
            continue
        pred = [d.bbox for d in a.defects]
        kind = row_kind(row)
        if kind == "degraded" and row.defects:
            ious.extend(best_ious(row.gt_boxes, pred))
        elif kind in ("clean", "dof"):
            fp_clean.append(len(pred))
    out: dict[str, Any] = {
        "n_gt_boxes": len(ious),
        "mean_iou": _mean(ious),
        "n_clean_images": len(fp_clean),
        "fp_boxes_per_clean_image": _mean(fp_clean),
        "n_failed": n_failed,
    }
    for t in IOU_THRESHOLDS:
        out[f"recall@{t}"] = (sum(1 for v in ious if v >= t) / len(ious)) if ious else None
    return out


# -- crop coverage --------------------------------------------------------------------


def _mask(boxes: Sequence[Box], width: int, height: int, scale: float) -> np.ndarray:
    gw, gh = max(1, round(width * scale)), max(1, round(height * scale))
    m = np.zeros((gh, gw), dtype=bool)
    for b in boxes:
        x1, y1, x2, y2 = b.clip(width, height).scale(scale).to_int()
        m[max(0, y1) : min(gh, y2), max(0, x1) : min(gw, x2)] = True
    return m


def crop_coverage(
    rows: Sequence[ManifestRow], assessments: Sequence[Assessment], grid: int = 512
) -> dict[str, Any]:
    """Defect-area share covered by probes vs image-area share probed (masks on a <= ``grid`` px raster)."""
    cov, area = [], []
    n_probed = 0
    for row, a in zip(rows, assessments):
        if not a.ok or row_kind(row) != "degraded" or not row.defects:
            continue
        scale = min(1.0, grid / max(row.width, row.height))
        probes = _mask(a.probes, row.width, row.height, scale)
        defects = _mask(row.gt_boxes, row.width, row.height, scale)
        n_probed += bool(a.probes)
        if defects.any():
            cov.append(float((probes & defects).sum() / defects.sum()))
            area.append(float(probes.mean()))
    mc, ma = _mean(cov), _mean(area)
    return {
        "n_images": len(cov),
        "n_images_with_probes": n_probed,
        "defect_area_covered": mc,
        "image_area_probed": ma,
        "concentration": (mc / ma) if mc is not None and ma else None,
    }


# -- crop bias ------------------------------------------------------------------------


def clean_probe_boxes(row: ManifestRow, n: int, rng: np.random.Generator, frac: float = 0.2) -> list[Box]:
    """``n`` boxes of side ``frac`` x the short side, placed away from ground-truth defects."""
    side = max(8.0, frac * min(row.width, row.height))
    boxes: list[Box] = []
    for _ in range(50 * n):
        if len(boxes) == n:
            break
        x = float(rng.uniform(0, row.width - side))
        y = float(rng.uniform(0, row.height - side))
        b = Box(x, y, x + side, y + side)
        if all(b.intersection(g.pad(side * 0.25)) == 0 for g in row.gt_boxes):
            boxes.append(b)
    return boxes


def crop_bias(
    scorer: Any, rows: Sequence[ManifestRow], n_probes: int = 2, seed: int = 0, drop: float = 0.25
) -> dict[str, Any]:
    """Paired scores without / with forced probes of clean regions, per row kind."""
    rng = np.random.default_rng(seed)
    per_kind: dict[str, dict[str, list[float]]] = {}
    n_failed = 0
    for row in rows:
        boxes = clean_probe_boxes(row, n_probes, rng)
        if not boxes:
            continue
        img = load_rgb(row.path)
        base = scorer.assess(img, path=row.path, seed=seed)
        probed = scorer.assess(img, path=row.path, forced_probes=boxes, seed=seed)
        if not (base.ok and probed.ok):
            n_failed += 1
            continue
        d = per_kind.setdefault(row_kind(row), {"delta": [], "base": []})
        d["delta"].append(float(probed.score) - float(base.score))  # type: ignore[arg-type]
        d["base"].append(float(base.score))  # type: ignore[arg-type]
    out: dict[str, Any] = {"n_probes": n_probes, "drop_threshold": drop, "n_failed": n_failed, "by_kind": {}}
    for kind, d in sorted(per_kind.items()):
        deltas = np.array(d["delta"])
        out["by_kind"][kind] = {
            "n": len(deltas),
            "mean_score_without": _mean(d["base"]),
            "mean_delta": float(deltas.mean()),
            "mean_abs_delta": float(np.abs(deltas).mean()),
            "share_dropped": float((deltas < -drop).mean()),
        }
    return out


# -- depth of field -------------------------------------------------------------------


def dof_false_positives(rows: Sequence[ManifestRow], assessments: Sequence[Assessment]) -> dict[str, Any]:
    """Share of DoF (and, for comparison, clean) images with >= 1 predicted defect / blur defect."""
    stats: dict[str, dict[str, list[float]]] = {}
    for row, a in zip(rows, assessments):
        kind = row_kind(row)
        if kind not in ("dof", "clean") or not a.ok:
            continue
        s = stats.setdefault(kind, {"any": [], "blur": [], "score": [], "mos": []})
        s["any"].append(float(bool(a.defects)))
        s["blur"].append(float(any("blur" in d.type for d in a.defects)))
        s["score"].append(float(a.score))  # type: ignore[arg-type]
        if row.mos is not None:
            s["mos"].append(float(row.mos))
    return {
        kind: {
            "n": len(s["any"]),
            "share_with_defects": _mean(s["any"]),
            "share_with_blur_defects": _mean(s["blur"]),
            "mean_score": _mean(s["score"]),
            "mean_mos": _mean(s["mos"]),
        }
        for kind, s in sorted(stats.items())
    }


# -- occlusion ------------------------------------------------------------------------


def _clean_twins(rows: Sequence[ManifestRow]) -> dict[tuple[str, int, int], ManifestRow]:
    twins: dict[tuple[str, int, int], ManifestRow] = {}
    for r in rows:
        if row_kind(r) == "clean" and r.source_id is not None:
            twins.setdefault((r.source_id, r.width, r.height), r)
    return twins


def occlusion(
    scorer: Any, rows: Sequence[ManifestRow], seed: int = 0, min_gap: float = 0.05
) -> dict[str, Any]:
    """Defect repair from the clean twin vs masking a clean region of the same size.

    ``recovery`` = (s_repaired - s_degraded) / (s_clean - s_degraded), over
    images whose clean and degraded scores differ by at least ``min_gap``.
    """
    rng = np.random.default_rng(seed)
    twins = _clean_twins(rows)
    repair_delta, recovery, mask_delta = [], [], []
    n_no_twin = n_failed = 0
    for row in rows:
        if row_kind(row) != "degraded" or not row.defects:
            continue
        twin = twins.get((row.source_id or "", row.width, row.height))
        if twin is None:
            n_no_twin += 1
            continue
        deg, clean = load_rgb(row.path), load_rgb(twin.path)
        if deg.shape != clean.shape:
            n_no_twin += 1
            continue
        repaired = deg.copy()
        for b in row.gt_boxes:
            x1, y1, x2, y2 = b.clip(row.width, row.height).pad(2).clip(row.width, row.height).to_int()
            repaired[y1:y2, x1:x2] = clean[y1:y2, x1:x2]
        big = max(row.gt_boxes, key=lambda b: b.area)
        masked = deg.copy()
        side = max(8.0, math.sqrt(big.area))
        control = clean_probe_boxes(row, 1, rng, frac=min(0.9, side / min(row.width, row.height)))
        scores = [scorer.assess(im, path=row.path, seed=seed) for im in (deg, clean, repaired)]
        if control:
            x1, y1, x2, y2 = control[0].to_int()
            masked[y1:y2, x1:x2] = masked[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0).astype(np.uint8)
            scores.append(scorer.assess(masked, path=row.path, seed=seed))
        if not all(s.ok for s in scores):
            n_failed += 1
            continue
        s_deg, s_clean, s_rep = (float(s.score) for s in scores[:3])  # type: ignore[arg-type]
        repair_delta.append(s_rep - s_deg)
        if abs(s_clean - s_deg) >= min_gap:
            recovery.append((s_rep - s_deg) / (s_clean - s_deg))
        if len(scores) == 4:
            mask_delta.append(abs(float(scores[3].score) - s_deg))  # type: ignore[arg-type]
    return {
        "n_images": len(repair_delta),
        "n_without_clean_twin": n_no_twin,
        "n_failed": n_failed,
        "mean_repair_delta": _mean(repair_delta),
        "mean_recovery": _mean(recovery),
        "n_recovery": len(recovery),
        "mean_abs_mask_delta": _mean(mask_delta),
    }


# -- all together -----------------------------------------------------------------------


@dataclass
class AnalysisResult:
    scorer: str
    n_images: int
    localization: dict[str, Any] = field(default_factory=dict)
    crop_coverage: dict[str, Any] = field(default_factory=dict)
    dof: dict[str, Any] = field(default_factory=dict)
    crop_bias: dict[str, Any] = field(default_factory=dict)
    occlusion: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("scorer", "n_images", "localization", "crop_coverage", "dof", "crop_bias", "occlusion")
        }


def run_analyses(
    scorer: Any, rows: Sequence[ManifestRow], n_probes: int = 2, seed: int = 0
) -> AnalysisResult:
    """Every analysis on ``rows`` with one scorer (each image assessed once plus the paired runs)."""
    rows = [r for r in rows if row_kind(r) != "unknown"]
    if not rows:
        raise ValueError(
            "the analyses need rows labelled degraded / clean / dof with defect boxes "
            "(a qprobe-bench manifest); none of the given rows is"
        )
    assessments = [scorer.assess(load_rgb(r.path), path=r.path, seed=seed) for r in rows]
    return AnalysisResult(
        scorer=str(getattr(scorer, "name", type(scorer).__name__)),
        n_images=len(rows),
        localization=localization(rows, assessments),
        crop_coverage=crop_coverage(rows, assessments),
        dof=dof_false_positives(rows, assessments),
        crop_bias=crop_bias(
            scorer, [r for r in rows if row_kind(r) in ("clean", "degraded")], n_probes, seed
        ),
        occlusion=occlusion(scorer, rows, seed),
    )


def _md_section(title: str, data: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", ""]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"- **{k}**: " + ", ".join(f"{kk} {_num(vv)}" for kk, vv in v.items()))
        else:
            lines.append(f"- {k}: {_num(v)}")
    return lines + [""]


def _num(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} {_num(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return "–" if v is None else str(v)


def write_analyses(result: AnalysisResult, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    atomic_write_json(out / "analyses.json", result.to_dict())
    md = [f"# Analyses: {result.scorer} on {result.n_images} images", ""]
    md += _md_section("Localization", result.localization)
    md += _md_section("Crop coverage", result.crop_coverage)
    md += _md_section("Depth-of-field false positives", result.dof)
    md += _md_section("Crop bias (forced clean-region probes)", result.crop_bias)
    md += _md_section("Occlusion", result.occlusion)
    atomic_write_text(out / "analyses.md", "\n".join(md))
    return {"json": out / "analyses.json", "md": out / "analyses.md"}
