"""Train the scan model and the dense defect head.

Data: the training photos only (the held-out photos never reach this module).

* **Scan model** — trained on a ``qprobe.bench.builder.build`` of the
  training photos (clean copies, synthetic depth-of-field negatives,
  locally degraded variants): per 32-px block context features
  (:mod:`qprobe.backends.classic.scan`) → P(defect), a one-hidden-layer MLP.
  Blocks whose centre lies in a defect box's core are positives, blocks of
  clean and depth-of-field images and away from defects are negatives,
  blocks on the feathered border are ignored.
* **Defect head** — on crops synthesized fresh from the training photos and
  from CLIVE photos (:mod:`qprobe.train_classic.synth`: made like the
  policy's zooms, one visible defect or none, depth-of-field looks) → frozen
  tap → per-cell labels, trained with class-balanced cross-entropy plus a
  severity regression on defect cells. The detection threshold is then set
  so that crops of CLIVE photos the head never saw rarely fire.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qprobe.backends.classic.detector import DetectorSettings, detect, softmax
from qprobe.backends.classic.model import ClassicNet
from qprobe.backends.classic.scan import block_features, context_features
from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow
from qprobe.types import Box

FEATHER_FRAC = 0.12
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999)
"""The head thresholds :func:`choose_threshold` tries (the finest ones for a head that fires on clean crops
even at 0.999: without them it fell back to the fewest false detections, above the target)."""


@dataclass
class DetectorTrainConfig:
    variants: int = field(default=6, metadata={"help": "Degraded variants per training photo (benchmark: scan model, fusion)."})
    dof_per_photo: int = field(default=2, metadata={"help": "Depth-of-field negatives per training photo (benchmark)."})
    crops_per_photo: int = field(
        default=500, metadata={"help": "Synthesized defect-head crops per training photo (train_classic/synth.py)."}
    )
    crops_per_clive_image: int = field(
        default=4, metadata={"help": "Synthesized defect-head crops per CLIVE photo (content diversity)."}
    )
    clive_holdout_every: int = field(
        default=5,
        metadata={"help": "Every n-th CLIVE photo is kept out of the head's training; its crops set the threshold."},
    )
    visible_delta: float = field(
        default=1.5, metadata={"help": "Mean change (grey levels) a cell needs to be labelled damaged; less: ignored."}
    )
    surround: int = field(
        default=0,
        metadata={"help": "The head also sees each tap cell's deviation from its k x k surround (NetConfig.defect_surround; 0: off)."},
    )
    bench_min_visible: float = field(
        default=0.0,
        metadata={
            "help": "The training benchmark's min_visible (BenchConfig): 0 keeps every draw, as the shipped weights "
            "were trained (their build predates the rule); 1 drops labels nobody can see."
        },
    )
    dof_grain: bool = field(
        default=False,
        metadata={
            "help": "Depth-of-field crops keep their photo's sensor grain (bench.grain); off in the shipped "
            "recipe (docs/classic-experiments.md, stop 28)."
        },
    )
    recompress: float = field(
        default=0.3,
        metadata={"help": "Share of photo crops cut from a JPEG re-encoding (quality 55-90) of the whole photo: uniform compression is not a local defect."},
    )
    zoom_side: int = field(default=320, metadata={"help": "Smallest requested zoom side (as the policy)."})
    max_crop_side: int = field(default=512, metadata={"help": "Network input cap (as the policy)."})
    view_long_side: int = field(default=512, metadata={"help": "Global view side (sets the min crop side)."})
    epochs: int = field(default=8, metadata={"help": "Passes of the defect head over the cached crops."})
    adapt: int = field(
        default=0,
        metadata={"help": "Fine-tune the head's own copies of the tap's last k blocks with it (NetConfig.defect_adapt; 0: frozen tap)."},
    )
    adapt_lr: float = field(default=0.25, metadata={"help": "Learning rate of the adapted tap blocks, relative to the head's."})
    batch_size: int = field(default=8, metadata={"help": "Crops per step (of equal shape)."})
    lr: float = field(default=2e-3, metadata={"help": "Peak learning rate of the defect head (one-cycle)."})
    max_fp_per_crop: float = field(
        default=0.01, metadata={"help": "Target false detections per negative crop of the held-out CLIVE photos."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})


def core_box(box: Box, feather_frac: float = FEATHER_FRAC) -> Box:
    """The part of a defect box not on its feathered border."""
    f = feather_frac * min(box.width, box.height)
    return Box(box.x1 + f, box.y1 + f, max(box.x1 + f, box.x2 - f), max(box.y1 + f, box.y2 - f))


def _proposal_box(rng: np.random.Generator, b: Box, side: int, w: int, h: int) -> Box:
    """A defect box as the scan would propose it: jittered, at least ``side``."""
    jx = rng.uniform(-0.25, 0.25) * b.width
    jy = rng.uniform(-0.25, 0.25) * b.height
    cx, cy = b.center[0] + jx, b.center[1] + jy
    bw = max(b.width * rng.uniform(0.8, 1.3), side)
    bh = max(b.height * rng.uniform(0.8, 1.3), side)
    return Box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2).clip(w, h)


@dataclass
class CropSample:
    stem: torch.Tensor  # 1 x C x h x w fp16
    labels: np.ndarray  # h x w int (-1 ignore)
    severity: np.ndarray  # h x w
    negative: bool  # no defect cell at all
    kind: str  # clean / dof / degraded
    lattice: np.ndarray | None = None  # h x w quantization evidence of the native crop (the banding check)


def _batches(samples: list[CropSample], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled mini-batches of crops whose stems have the same shape (stacked without padding)."""
    buckets: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(samples):
        buckets.setdefault(tuple(s.stem.shape), []).append(i)
    out: list[list[int]] = []
    for idx in buckets.values():
        perm = [idx[int(j)] for j in rng.permutation(len(idx))]
        out += [perm[k : k + size] for k in range(0, len(perm), size)]
    return [out[int(j)] for j in rng.permutation(len(out))]


def train_head(net: ClassicNet, samples: list[CropSample], cfg: DetectorTrainConfig, log: Any = print) -> None:
    """Train ``net.defect`` in place on cached crop stems (mini-batches of equal-shape crops, one-cycle lr)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_cls = len(net.config.classes)
    counts = np.bincount(np.concatenate([s.labels[s.labels >= 0] for s in samples]), minlength=n_cls).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1.0) / n_cls) ** 0.5, dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weight, ignore_index=-1)
    # the head's own tap blocks (NetConfig.defect_adapt) are fine-tuned with it, at a lower rate and with
    # their batch-norm statistics kept (eval mode): they start from ImageNet and should stay near it
    groups = [{"params": list(net.defect.parameters()), "lr": cfg.lr}]
    adapt = list(net.defect_adapt.parameters())
    if adapt:
        groups.append({"params": adapt, "lr": cfg.lr * cfg.adapt_lr})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=1e-4)
    per_epoch = len(_batches(samples, cfg.batch_size, np.random.default_rng(0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=max(1, cfg.epochs * per_epoch), pct_start=0.1
    )
    net.defect.train()
    net.defect_adapt.eval()
    net.defect.to(memory_format=torch.channels_last)  # ~1.2x faster steps on CPU; the function is the same
    net.defect_adapt.to(memory_format=torch.channels_last)
    t0 = time.time()
    for epoch in range(cfg.epochs):
        losses = []
        for batch in _batches(samples, cfg.batch_size, rng):
            stems = torch.cat([samples[i].stem for i in batch]).float().contiguous(memory_format=torch.channels_last)
            out = net.defect_logits(stems)
            y = torch.from_numpy(np.stack([samples[i].labels for i in batch]))
            loss = ce(out[:, :n_cls], y)
            pos = y > 0
            if pos.any():
                sev_pred = 1.0 + 4.0 * torch.sigmoid(out[:, n_cls])
                sev = torch.from_numpy(np.stack([samples[i].severity for i in batch]))
                loss = loss + 0.1 * ((sev_pred - sev) ** 2)[pos].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        log(f"  defect head epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses):.4f} ({time.time() - t0:.0f}s)")
    net.defect.to(memory_format=torch.contiguous_format)
    net.defect_adapt.to(memory_format=torch.contiguous_format)
    net.defect.eval()


@torch.no_grad()
def choose_threshold(
    net: ClassicNet, samples: list[CropSample], max_fp_per_crop: float
) -> tuple[float, int, dict[str, float]]:
    """(threshold, min_cells) with the best positive-crop hit rate among those whose
    false components per negative crop stay under the target (else the fewest false ones)."""
    classes = list(net.config.classes)
    n_cls = len(classes)
    maps = []
    for s in samples:
        out = net.defect_logits(s.stem.float())[0].numpy()
        maps.append((softmax(out[:n_cls], axis=0), s))
    table = []
    for min_cells in (2, 4, 8):
        for t in THRESHOLDS:
            settings = DetectorSettings(threshold=float(t), min_cells=min_cells)
            fp = neg = hit = pos = 0
            for probs, s in maps:
                box = Box(0, 0, probs.shape[2], probs.shape[1])
                found = detect(probs, np.full(probs.shape[1:], 3.0), classes, box, settings, s.lattice)
                if s.negative:
                    neg += 1
                    fp += len(found)
                elif (s.labels > 0).sum() >= 4:
                    pos += 1
                    hit += int(any(_covers(f.bbox, s.labels) for f in found))
            table.append((fp / max(neg, 1), hit / max(pos, 1), float(t), min_cells))
    ok = [row for row in table if row[0] <= max_fp_per_crop]
    fp_rate, hit_rate, t, mc = max(ok, key=lambda r: (r[1], -r[0])) if ok else min(table, key=lambda r: (r[0], -r[1]))
    stats = {"threshold": t, "min_cells": mc, "fp_per_negative_crop": fp_rate, "positive_crop_hit_rate": hit_rate}
    return t, mc, stats


def _covers(box: Box, labels: np.ndarray) -> bool:
    ys, xs = np.nonzero(labels > 0)
    gt = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return box.iou(gt) >= 0.3


# -- scan model -----------------------------------------------------------------
def scan_examples(rows: list[ManifestRow], cell: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    t0 = time.time()
    for n, row in enumerate(rows):
        img = load_rgb(row.path)
        scan = block_features(img, cell=cell)
        ctx = context_features(scan, radius=radius)
        rows_, cols_ = scan.shape
        c = scan.cell
        cy = (np.arange(rows_) + 0.5) * c
        cx = (np.arange(cols_) + 0.5) * c
        lab = np.zeros((rows_, cols_), np.float32)
        for d in row.defects:
            b, core = d.bbox, core_box(d.bbox)
            inside = (cy[:, None] >= b.y1) & (cy[:, None] < b.y2) & (cx[None, :] >= b.x1) & (cx[None, :] < b.x2)
            in_core = (cy[:, None] >= core.y1) & (cy[:, None] < core.y2) & (cx[None, :] >= core.x1) & (cx[None, :] < core.x2)
            lab[inside & ~in_core] = -1
            lab[in_core] = 1
        keep = lab >= 0
        xs.append(ctx[keep])
        ys.append(lab[keep])
        if (n + 1) % 20 == 0:
            print(f"  scan features: {n + 1}/{len(rows)} images ({time.time() - t0:.0f}s)", flush=True)
    return np.concatenate(xs), np.concatenate(ys)


def train_scan(x: np.ndarray, y: np.ndarray, hidden: int = 16, epochs: int = 300, seed: int = 0) -> dict[str, object]:
    """One-hidden-layer MLP (no bias in the hidden layer: the features carry a constant)."""
    torch.manual_seed(seed)
    X = torch.from_numpy(x.astype(np.float32))
    Y = torch.from_numpy(y.astype(np.float32))
    w1 = nn.Parameter(torch.randn(X.shape[1], hidden) * 0.3)
    w2 = nn.Parameter(torch.zeros(hidden + 1))
    pos = float(Y.mean())
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-6)))
    opt = torch.optim.Adam([w1, w2], lr=1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        z = torch.relu(X @ w1)
        logit = z @ w2[:-1] + w2[-1]
        loss = bce(logit, Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = torch.sigmoid(torch.relu(X @ w1) @ w2[:-1] + w2[-1]).numpy()
    neg_p = p[y == 0]
    # threshold: 99th percentile of negatives, so clean texture rarely forms blobs
    threshold = float(np.quantile(neg_p, 0.99)) if neg_p.size else 0.5
    recall = float((p[y == 1] > threshold).mean()) if (y == 1).any() else 0.0
    print(f"  scan model: {len(y)} blocks, {int(y.sum())} positive, block recall {recall:.3f} at p>{threshold:.3f}")
    return {
        "hidden": w1.detach().numpy().tolist(),
        "weights": w2.detach().numpy().tolist(),
        "threshold": threshold,
        "block_recall": recall,
    }


def link_photos(photos: list[Path], folder: Path) -> Path:
    """A folder of symlinks to ``photos`` (the builder reads a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos:
        link = folder / p.name
        if not link.exists():
            os.symlink(p.resolve(), link)
    return folder
