"""The data flywheel: teacher trajectories → a filtered, hybrid-resolution SFT set.

For every labelled image of a manifest, a **teacher** backend (any
registered backend: a strong VLM through ``openai``, a checkpoint through
``transformers``, or ``classic``) runs a probing episode on the image at one
of several **resolutions** (a seeded choice per image, e.g. full, 1/2, 1/4:
the SFT model learns to probe at every scale). An episode is **kept** when

* its score is within ``tau`` of the MOS, and
* its defect boxes match the ground truth (``R_loc >= iou_min``, Hungarian
  IoU matching; on a clean or depth-of-field image: no defect reported).

Clean and depth-of-field images are probed **on purpose** (``clean_probes``
forced zooms into them when the teacher did not zoom), so the kept set holds
crops of clean regions and natural blur next to damaged ones and "a crop
happened" predicts nothing (the paper's context-aware data mix). Every crop
is classified (damaged / clean / dof) and the mix is reported in
``stats.json``.

Outputs in ``out_dir``: ``trajectories.jsonl`` (kept; one JSON object per
episode with the trajectory and its labels), ``rejected.jsonl`` (with the
reason), ``images/`` (the resized copies), ``stats.json`` and the resolved
config. Re-running resumes: images already decided are skipped.

Run: ``qprobe train flywheel --config configs/train/flywheel_tiny.yaml``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe.errors import ConfigError
from qprobe.manifest import ManifestRow, resolve_path
from qprobe.types import Box


@dataclass
class FlywheelConfig:
    """Teacher trajectories, filtered into Stage 2's SFT set."""

    manifest: str = field(default="", metadata={"help": "Benchmark manifest (JSONL) with mos and defect boxes."})
    out_dir: str = field(default="runs/flywheel", metadata={"help": "Output folder (resumable)."})
    split: str | None = field(default="train", metadata={"help": "Manifest split (None: all rows)."})
    max_images: int | None = field(default=None, metadata={"help": "Use at most this many images (seeded choice)."})
    teacher: str = field(default="classic", metadata={"help": "Teacher backend name (qprobe ls backends)."})
    teacher_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Keyword options of the teacher backend (e.g. model, base_url)."}
    )
    resolutions: list[float] = field(
        default_factory=lambda: [1.0, 0.5, 0.25],
        metadata={"help": "Scales the originals are shown at (one seeded choice per image): hybrid resolution."},
    )
    tau: float = field(default=0.5, metadata={"help": "Keep an episode when |score - MOS| < tau."})
    iou_min: float = field(default=0.3, metadata={"help": "Keep an episode when its defect boxes reach this R_loc."})
    clean_probes: int = field(
        default=1, metadata={"help": "Forced zooms into clean / depth-of-field images the teacher did not zoom into."}
    )
    max_zooms: int | None = field(default=None, metadata={"help": "Teacher zoom budget (None: the backend's)."})
    seed: int = field(default=0, metadata={"help": "Seed of the image choice, resolutions and forced probes."})

    def check(self) -> None:
        if not Path(self.manifest).is_file():
            raise ConfigError(f"manifest not found: {self.manifest!r} (set --manifest)")
        if not self.resolutions or any(not 0 < s <= 1 for s in self.resolutions):
            raise ConfigError(f"resolutions must be scales in (0, 1], got {self.resolutions}")
        if self.tau <= 0:
            raise ConfigError(f"tau must be > 0, got {self.tau}")


def _pick(key: str, seed: int, options: list[float]) -> float:
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return options[digest[0] % len(options)]


def crop_kind(crop: Box, gt: list[Box], dof: bool) -> str:
    """``damaged`` if the crop overlaps a ground-truth defect, else ``dof`` on a DoF image, else ``clean``."""
    if any(crop.intersection(g) > 0 for g in gt):
        return "damaged"
    return "dof" if dof else "clean"


def _scaled_copy(row: ManifestRow, original: Path, scale: float, images_dir: Path) -> tuple[Path, int, int]:
    """The image at ``scale`` (the original itself at 1.0), written once under ``images_dir``."""
    if scale >= 1.0:
        return original, row.width, row.height
    from PIL import Image

    from qprobe._fs import atomic_write_bytes
    from qprobe.io import load_image

    w, h = max(1, round(row.width * scale)), max(1, round(row.height * scale))
    digest = hashlib.sha1(f"{row.dataset}/{row.id}".encode()).hexdigest()[:12]
    out = images_dir / f"{digest}_{w}x{h}.png"
    if not out.exists():
        import io

        img = load_image(original).resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(out, buf.getvalue())
    return out, w, h


def _clean_probe(w: int, h: int, rng: random.Random) -> Box:
    side_w, side_h = max(8, w // 4), max(8, h // 4)
    x1 = rng.randint(0, max(0, w - side_w))
    y1 = rng.randint(0, max(0, h - side_h))
    return Box(x1, y1, x1 + side_w, y1 + side_h)


def judge(score: float | None, pred: list[Box], gt: list[Box] | None, mos: float, tau: float, iou_min: float) -> str | None:
    """Why an episode is rejected, or ``None`` to keep it.

    >>> judge(3.0, [], [], 3.2, 0.5, 0.3) is None
    True
    >>> judge(3.0, [Box(0, 0, 5, 5)], [], 3.2, 0.5, 0.3)
    'defects: R_loc 0.00 < 0.3'
    >>> judge(None, [], None, 3.2, 0.5, 0.3)
    'no score'
    """
    from qprobe.train.rewards.loc import match_iou

    if score is None:
        return "no score"
    if abs(score - mos) >= tau:
        return f"score: |{score:.2f} - {mos:.2f}| >= {tau}"
    if gt is not None:
        r = match_iou(pred, gt)
        if r < iou_min:
            return f"defects: R_loc {r:.2f} < {iou_min}"
    return None


def run_flywheel(cfg: FlywheelConfig) -> dict[str, Any]:
    """Run the teacher over the manifest, filter, and write the SFT set; returns the stats."""
    from qprobe._fs import JsonlAppender, atomic_write_json, read_jsonl_tolerant
    from qprobe.backends import create_backend
    from qprobe.config import write_resolved
    from qprobe.train.data import gt_boxes_of
    from qprobe.train.stage1 import select_rows

    cfg.check()
    out = Path(cfg.out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out / "config.resolved.yaml")
    rows = select_rows(cfg.manifest, cfg.split, cfg.max_images, cfg.seed)
    kept_path, rejected_path = out / "trajectories.jsonl", out / "rejected.jsonl"
    done = {r["id"] for r in read_jsonl_tolerant(kept_path, repair=True)}
    done |= {r["id"] for r in read_jsonl_tolerant(rejected_path, repair=True)}
    teacher = create_backend(cfg.teacher, **cfg.teacher_options)
    with JsonlAppender(kept_path) as kept, JsonlAppender(rejected_path) as rejected:
        for row in rows:
            if row.id in done:
                continue
            record = _episode(row, cfg, teacher, images_dir, gt_boxes_of(row))
            (kept if record["reason"] is None else rejected).write(record)
    stats = flywheel_stats(read_jsonl_tolerant(kept_path), read_jsonl_tolerant(rejected_path))
    atomic_write_json(out / "stats.json", stats)
    return stats


def _episode(row: ManifestRow, cfg: FlywheelConfig, teacher: Any, images_dir: Path, gt_raw: list | None) -> dict[str, Any]:
    assert row.mos is not None
    original = resolve_path(row, cfg.manifest)
    scale = _pick(row.id, cfg.seed, list(cfg.resolutions))
    path, w, h = _scaled_copy(row, original, scale, images_dir)
    sx, sy = w / row.width, h / row.height
    gt = None if gt_raw is None else [Box.from_list(b).scale(sx, sy) for b in gt_raw]
    kw: dict[str, Any] = {"path": str(path), "seed": cfg.seed}
    if cfg.max_zooms is not None:
        kw["max_zooms"] = cfg.max_zooms
    assessment = teacher.assess(str(path), **kw)
    unprobed_clean = gt is not None and not gt and not assessment.probes
    if unprobed_clean and cfg.clean_probes > 0:  # probe clean / DoF images on purpose
        rng = random.Random(f"{cfg.seed}:{row.id}")
        kw["forced_probes"] = [_clean_probe(w, h, rng) for _ in range(cfg.clean_probes)]
        assessment = teacher.assess(str(path), **kw)
    pred = [d.bbox for d in assessment.defects]
    reason = assessment.error or judge(assessment.score, pred, gt, row.mos, cfg.tau, cfg.iou_min)
    crops = [crop_kind(b, gt or [], row.dof) for b in assessment.probes] if gt is not None else []
    return {
        "id": row.id,
        "dataset": row.dataset,
        "mos": row.mos,
        "scale": scale,
        "image": str(path),
        "size": [w, h],
        "gt_boxes": None if gt is None else [b.to_list(ndigits=None) for b in gt],
        "dof": row.dof,
        "score": assessment.score,
        "crops": crops,
        "reason": reason,
        "trajectory": None if assessment.trajectory is None else assessment.trajectory.to_dict(),
    }


def flywheel_stats(kept: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of kept/rejected episodes, rejection reasons, resolutions and the crop mix of the kept set."""
    from collections import Counter

    reasons = Counter(str(r["reason"]).split(":")[0] for r in rejected)
    crops = Counter(c for r in kept for c in r.get("crops", []))
    n_crops = sum(crops.values())
    return {
        "episodes": len(kept) + len(rejected),
        "kept": len(kept),
        "rejected": len(rejected),
        "keep_rate": round(len(kept) / max(1, len(kept) + len(rejected)), 4),
        "rejected_by": dict(sorted(reasons.items())),
        "kept_by_scale": {str(k): v for k, v in sorted(Counter(r["scale"] for r in kept).items())},
        "kept_clean_images": sum(1 for r in kept if r.get("gt_boxes") == []),
        "crops": dict(sorted(crops.items())),
        "crop_mix": {k: round(v / n_crops, 4) for k, v in sorted(crops.items())} if n_crops else {},
    }
