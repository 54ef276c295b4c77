"""Train the scan model and the dense defect head on benchmark builds.

Data: ``qprobe.bench.builder.build`` run on the *training* photos only
(clean copies, synthetic depth-of-field negatives, locally degraded
variants); the held-out photos never reach this module.

* **Scan model** — per 32-px block context features
  (:mod:`qprobe.backends.classic.scan`) → P(defect), a one-hidden-layer MLP.
  Blocks whose centre lies in a defect box's core are positives, blocks of
  clean and depth-of-field images and away from defects are negatives,
  blocks on the feathered border are ignored.
* **Defect head** — crops made like the policy makes them (a defect box or a
  random texture box, at least ``zoom_side`` px, enlarged 1.5x, at most
  ``max_crop_side`` px for the network) → frozen stem → per-cell labels
  (class of the defect whose core holds the cell centre, clean, or ignored
  on the feather), trained with class-balanced cross-entropy plus a
  severity regression on defect cells. The detection threshold is then
  set so that negative crops (clean, DoF, undamaged areas) rarely fire.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qprobe.agent.cropping import CropConfig, context_box
from qprobe.backends.classic.detector import DetectorSettings, detect, softmax
from qprobe.backends.classic.model import ClassicNet
from qprobe.backends.classic.runtime import fit_side, to_batch
from qprobe.backends.classic.scan import block_features, context_features
from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow
from qprobe.types import Box

FEATHER_FRAC = 0.12


@dataclass
class DetectorTrainConfig:
    variants: int = field(default=6, metadata={"help": "Degraded variants per training photo."})
    dof_per_photo: int = field(default=2, metadata={"help": "Depth-of-field negatives per training photo."})
    crops_per_defect: int = field(default=1, metadata={"help": "Positive crops per defect (each paired with clean/DoF crops)."})
    negatives_per_image: int = field(default=2, metadata={"help": "Random crops per image (mostly clean)."})
    recompress: float = field(
        default=0.3,
        metadata={"help": "Share of photo groups re-encoded as JPEG (quality 55-90) as a whole: uniform compression is not a local defect."},
    )
    min_severity: int = field(default=2, metadata={"help": "Defects below this severity are ignored in the labels."})
    zoom_side: int = field(default=320, metadata={"help": "Smallest requested zoom side (as the policy)."})
    max_crop_side: int = field(default=512, metadata={"help": "Network input cap (as the policy)."})
    view_long_side: int = field(default=512, metadata={"help": "Global view side (sets the min crop side)."})
    epochs: int = field(default=15, metadata={"help": "Passes of the defect head over the cached crops."})
    max_fp_per_crop: float = field(default=0.01, metadata={"help": "Target false detections per negative crop."})
    seed: int = field(default=0, metadata={"help": "Random seed."})


def core_box(box: Box) -> Box:
    """The part of a defect box not on its feathered border."""
    f = FEATHER_FRAC * min(box.width, box.height)
    return Box(box.x1 + f, box.y1 + f, max(box.x1 + f, box.x2 - f), max(box.y1 + f, box.y2 - f))


def cell_labels(
    grid: tuple[int, int], crop_box: Box, row: ManifestRow, classes: list[str], min_severity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(class index per cell, -1 = ignore; severity per cell) for a crop's h x w grid.

    Defects below ``min_severity`` (barely visible) are ignored, not taught as positives.
    """
    h, w = grid
    sx, sy = crop_box.width / w, crop_box.height / h
    cx = crop_box.x1 + (np.arange(w) + 0.5) * sx
    cy = crop_box.y1 + (np.arange(h) + 0.5) * sy
    labels = np.zeros((h, w), np.int64)
    sev = np.zeros((h, w), np.float32)
    for d in row.defects:
        b = d.bbox
        core = core_box(b)
        inside = (cy[:, None] >= b.y1) & (cy[:, None] < b.y2) & (cx[None, :] >= b.x1) & (cx[None, :] < b.x2)
        in_core = (cy[:, None] >= core.y1) & (cy[:, None] < core.y2) & (cx[None, :] >= core.x1) & (cx[None, :] < core.x2)
        k = classes.index(d.type) if d.type in classes else -1
        if (d.severity or 3) < min_severity:
            labels[inside] = -1
            continue
        labels[inside & ~in_core] = -1
        labels[in_core] = k
        sev[in_core] = float(d.severity or 3)
    return labels, sev


def _random_box(rng: np.random.Generator, w: int, h: int, side: int) -> Box:
    s = min(side, w, h)
    x = float(rng.uniform(0, w - s))
    y = float(rng.uniform(0, h - s))
    return Box(x, y, x + s, y + s)


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


@torch.no_grad()
def collect_crops(net: ClassicNet, rows: list[ManifestRow], classes: list[str], cfg: DetectorTrainConfig) -> list[CropSample]:
    """Crops made like the policy's, with *paired* negatives.

    Defects are injected into texture-rich regions, so a detector trained
    against random negatives learns "texture means damage". Every crop of a
    defect is therefore paired with the crop of the same box in the clean
    copy and in the depth-of-field copies of the same photo (same content,
    no defect; DoF adds natural blur), plus ``negatives_per_image`` random
    crops per image. A share of photo groups is re-encoded as JPEG as a
    whole first (the same quality for every image of the group): real
    "pristine" photos are compressed, and compression all over the image is
    not a local defect.
    """
    rng = np.random.default_rng(cfg.seed)
    crop_cfg = CropConfig()
    out: list[CropSample] = []
    t0 = time.time()
    groups: dict[str, list[ManifestRow]] = {}
    for row in rows:
        groups.setdefault(row.source_id or row.id, []).append(row)
    done = 0
    for group in groups.values():
        quality = int(rng.integers(55, 91)) if rng.random() < cfg.recompress else 0

        def read(r: ManifestRow) -> np.ndarray:
            return _recompress(load_rgb(r.path), quality) if quality else load_rgb(r.path)

        negatives = [r for r in group if str(r.extra.get("kind")) in ("clean", "dof")]
        neg_pixels = [(r, read(r)) for r in negatives]
        for row in group:
            img = read(row)
            h, w = img.shape[:2]
            view_scale = min(1.0, cfg.view_long_side / max(w, h))
            boxes = [
                _proposal_box(rng, d.bbox, cfg.zoom_side, w, h) for d in row.defects for _ in range(cfg.crops_per_defect)
            ]
            sources = [(row, img, b) for b in boxes]
            sources += [(nr, npix, b) for b in boxes for nr, npix in neg_pixels if npix.shape == img.shape]
            sources += [(row, img, _random_box(rng, w, h, cfg.zoom_side)) for _ in range(cfg.negatives_per_image)]
            for src_row, pixels, req in sources:
                eff = context_box(req, (w, h), crop_cfg, view_scale)
                x1, y1, x2, y2 = (int(v) for v in eff.to_list(None))
                pix = fit_side(pixels[y1:y2, x1:x2], cfg.max_crop_side)
                tap = net.tap(to_batch(pix)).half()
                labels, sev = cell_labels(net.defect_grid(tap.shape[2:]), eff, src_row, classes, cfg.min_severity)
                kind = str(src_row.extra.get("kind", "?"))
                out.append(CropSample(tap, labels, sev, not (labels > 0).any(), kind))
            done += 1
            if done % 10 == 0:
                print(f"  detector crops: {done}/{len(rows)} images, {len(out)} crops ({time.time() - t0:.0f}s)", flush=True)
    return out


def _recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def train_head(net: ClassicNet, samples: list[CropSample], cfg: DetectorTrainConfig) -> None:
    """Train ``net.defect`` in place on cached crop stems."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_cls = len(net.config.classes)
    counts = np.bincount(np.concatenate([s.labels[s.labels >= 0] for s in samples]), minlength=n_cls).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1.0) / n_cls) ** 0.5, dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weight, ignore_index=-1)
    opt = torch.optim.AdamW(net.defect.parameters(), lr=2e-3, weight_decay=1e-4)
    net.defect.train()
    for epoch in range(cfg.epochs):
        losses = []
        for i in rng.permutation(len(samples)):
            s = samples[int(i)]
            out = net.defect_logits(s.stem.float())
            y = torch.from_numpy(s.labels).unsqueeze(0)
            loss = ce(out[:, :n_cls], y)
            pos = torch.from_numpy(s.labels > 0)
            if pos.any():
                sev_pred = 1.0 + 4.0 * torch.sigmoid(out[0, n_cls])
                loss = loss + 0.1 * ((sev_pred - torch.from_numpy(s.severity)) ** 2)[pos].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        if (epoch + 1) % 10 == 0 or epoch == 0:
            print(f"  defect head epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses):.4f}", flush=True)
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
        for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995):
            settings = DetectorSettings(threshold=float(t), min_cells=min_cells)
            fp = neg = hit = pos = 0
            for probs, s in maps:
                box = Box(0, 0, probs.shape[2], probs.shape[1])
                found = detect(probs, np.full(probs.shape[1:], 3.0), classes, box, settings)
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
