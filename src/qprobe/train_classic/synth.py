"""Synthesized training crops for the dense defect head.

A benchmark build gives a few defects per photo; the head needs many, on
varied content, and many clean crops of content it has not memorised. Here
every crop is made fresh, the way the policy will see it:

* **Photo crops** (the training photos, full resolution): a texture-rich
  region is drawn as the benchmark draws it
  (:func:`~qprobe.bench.regions.select_regions`), the policy's zoom box
  around it is jittered and enlarged for context
  (:func:`~qprobe.agent.cropping.context_box`), and that window gets one
  registered degradation at a random severity inside the region (feathered,
  :func:`~qprobe.bench.inject.apply_local`), or stays clean, or gets a
  depth-of-field look (a smooth blur that grows away from a subject, as a
  whole photo's depth of field looks inside one window), or both. A share
  of photos is re-encoded as JPEG as a whole: compression all over the
  image is not a local defect.
* **CLIVE crops**: the same on the CLIVE photos (820 scenes instead of
  14). Their authentic distortions cover the whole photo, so they are
  "clean" for a *local* detector: the head learns that what differs from
  the surroundings is damage, not what looks worse than a pristine photo.
  A fixed share of CLIVE images is kept out of training; the detection
  threshold is chosen on their crops (content the head never saw).

Labels per cell of the head's grid: the degradation's class where the
cell centre lies in the core of the region *and* the degradation visibly
changed the cell (mean change ≥ ``visible_delta`` grey levels: a blur over
a flat patch changes nothing and is not taught as damage), ignored on the
feathered border and where the change is invisible, clean elsewhere.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from qprobe.agent.cropping import CropConfig, context_box
from qprobe.backends.classic.mobilenet import normalize
from qprobe.backends.classic.model import ClassicNet
from qprobe.backends.classic.quantization import lattice_cells
from qprobe.backends.classic.runtime import fit_side, to_batch
from qprobe.bench.dof import apply_dof
from qprobe.bench.grain import estimate_noise_sigma
from qprobe.bench.inject import apply_local
from qprobe.bench.regions import select_regions, texture_map
from qprobe.io import load_rgb
from qprobe.train_classic.detector import CropSample, _proposal_box, core_box
from qprobe.types import Box

KINDS = ("degraded", "clean", "dof", "dof+degraded")


def _luma(a: np.ndarray) -> np.ndarray:
    f = a.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def cell_change(before: np.ndarray, after: np.ndarray, grid: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Mean visible change per cell of an ``h x w`` grid laid over the window (grey levels).

    Luma difference plus half the mean colour difference, so a chroma-only
    defect (chroma noise) also counts. ``box``: where the two can differ at
    all (a local degradation's box); pixels outside it are not compared.
    """
    gh, gw = grid
    hgt, wid = before.shape[:2]
    if box is None:
        ys_, xs_ = slice(0, hgt), slice(0, wid)
    else:
        x1, y1, x2, y2 = (int(v) for v in box.clip(wid, hgt).to_int())
        ys_, xs_ = slice(y1, y2), slice(x1, x2)
    a, b = after[ys_, xs_], before[ys_, xs_]
    d = np.zeros((hgt, wid), np.float32)
    d[ys_, xs_] = np.abs(_luma(a) - _luma(b)) + 0.5 * np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    ys = np.minimum((np.arange(hgt) * gh) // hgt, gh - 1)  # the cell row of each pixel row
    xs = np.minimum((np.arange(wid) * gw) // wid, gw - 1)
    count = np.bincount(ys, minlength=gh)[:, None] * np.bincount(xs, minlength=gw)[None, :]
    if gh <= hgt and gw <= wid:  # every cell holds pixels: contiguous block sums
        total = np.add.reduceat(np.add.reduceat(d, np.searchsorted(ys, np.arange(gh)), axis=0),
                                np.searchsorted(xs, np.arange(gw)), axis=1)
    else:
        total = np.zeros((gh, gw), np.float64)
        np.add.at(total, (ys[:, None], xs[None, :]), d)
    return (total / np.maximum(count, 1)).astype(np.float32)


def window_labels(
    grid: tuple[int, int],
    size: tuple[int, int],
    box: Box | None,
    class_index: int,
    severity: int,
    change: np.ndarray | None,
    visible_delta: float,
    feather_frac: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(class per cell, -1 = ignore; severity per cell) of a window with at most one defect ``box``."""
    gh, gw = grid
    labels = np.zeros((gh, gw), np.int64)
    sev = np.zeros((gh, gw), np.float32)
    if box is None:
        return labels, sev
    wid, hgt = size
    cx = (np.arange(gw) + 0.5) * wid / gw
    cy = (np.arange(gh) + 0.5) * hgt / gh
    c = core_box(box, feather_frac)
    inside = (cy[:, None] >= box.y1) & (cy[:, None] < box.y2) & (cx[None, :] >= box.x1) & (cx[None, :] < box.x2)
    core = (cy[:, None] >= c.y1) & (cy[:, None] < c.y2) & (cx[None, :] >= c.x1) & (cx[None, :] < c.x2)
    visible = np.ones_like(core) if change is None else change >= visible_delta
    labels[inside] = -1
    labels[core & visible] = class_index
    sev[core] = float(severity)
    return labels, sev


def recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def dof_window(
    win: np.ndarray, rng: np.random.Generator, max_sigma: float, falloff: float, grain: np.ndarray | None = None
) -> np.ndarray:
    """A depth-of-field look on a window: blur growing smoothly away from a subject that may lie outside it.

    ``grain``: the photo's sensor grain (:func:`~qprobe.bench.grain.estimate_noise_sigma`) to put back where
    the blur removed it. Its noise comes from a generator seeded by the window's own draws, so ``rng``
    advances exactly as without grain: crops synthesized with and without it pair up one to one.
    """
    h, w = win.shape[:2]
    side = rng.uniform(0.1, 0.5) * min(w, h)
    sx, sy = rng.uniform(-1.5, 2.5) * w, rng.uniform(-1.5, 2.5) * h
    noise_rng = None
    if grain is not None:
        draws = np.array([sx, sy, side, max_sigma, falloff], dtype=np.float64)
        noise_rng = np.random.default_rng(np.frombuffer(draws.tobytes(), dtype=np.uint32))
    subject = Box(sx, sy, sx + side, sy + side)
    return apply_dof(win, subject, max_sigma=max_sigma, falloff=falloff, grain=grain, rng=noise_rng).image


class CropMaker:
    """Turns (window, optional defect) into a :class:`~qprobe.train_classic.detector.CropSample`."""

    def __init__(self, net: ClassicNet, classes: Sequence[str], visible_delta: float, max_side: int, feather_frac: float):
        from qprobe.backends.classic import onnx_engine

        self.net = net
        # the frozen tap as the runtime runs it: on ONNX Runtime when installed (~2x faster), else
        # in torch with batch norm folded and channels-last (~1.5x faster than as trained)
        self._onnx = (
            onnx_engine.OnnxEngine(net, threads=torch.get_num_threads(), graphs=("tap",))
            if onnx_engine.available()
            else None
        )
        self._tap: torch.nn.Module | None = None  # the torch fallback, built on first use
        self.classes = list(classes)
        self.names = [c for c in self.classes if c != "clean"]
        self.visible_delta = visible_delta
        self.max_side = max_side
        self.feather_frac = feather_frac

    def degrade(
        self, win: np.ndarray, region: Box | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, Box | None, str | None, int]:
        """One random degradation at a random severity inside ``region`` (window pixels)."""
        if region is None:
            return win, None, None, 0
        box = region.clip(win.shape[1], win.shape[0])
        if box.width < 16 or box.height < 16:
            return win, None, None, 0
        name = self.names[int(rng.integers(len(self.names)))]
        severity = int(rng.integers(1, 6))
        res = apply_local(win, box, name, severity, rng, feather_frac=self.feather_frac)
        return res.image, res.defect.bbox, name, severity

    @torch.no_grad()
    def sample(
        self,
        win: np.ndarray,
        clean: np.ndarray,
        box: Box | None,
        name: str | None,
        severity: int,
        kind: str,
        lattice: bool = False,
    ) -> CropSample:
        """The crop's tap and cell labels; ``lattice``: also its banding evidence (for choosing the threshold)."""
        tap = self.tap(fit_side(win, self.max_side))
        grid = self.net.defect_grid(tap.shape[2:])
        change = cell_change(clean, win, grid, box) if box is not None else None
        k = self.classes.index(name) if name is not None else 0
        labels, sev = window_labels(
            grid, (win.shape[1], win.shape[0]), box, k, severity, change, self.visible_delta, self.feather_frac
        )
        evidence = lattice_cells(win, grid) if lattice else None
        return CropSample(tap, labels, sev, not (labels > 0).any(), kind, evidence)


    @torch.no_grad()
    def tap(self, rgb: np.ndarray) -> torch.Tensor:
        """The frozen tap of one crop (fp16, 1 x C x h x w): ``ClassicNet.tap``, the head's cached input."""
        if self._onnx is not None:
            return torch.from_numpy(self._onnx.tap(to_batch(rgb).numpy())).half()
        if self._tap is None:
            from qprobe.backends.classic.mobilenet import fuse_batchnorm

            tap = copy.deepcopy(self.net.features[: self.net.frozen_tap]).eval()
            self._tap = fuse_batchnorm(tap).to(memory_format=torch.channels_last)
        x = normalize(to_batch(rgb)).contiguous(memory_format=torch.channels_last)
        return self._tap(x).contiguous().half()


def _kind(rng: np.random.Generator, p: Sequence[float]) -> str:
    return str(KINDS[int(rng.choice(len(KINDS), p=np.asarray(p) / np.sum(p)))])


def photo_crops(
    maker: CropMaker,
    photos: Sequence[Path],
    per_photo: int,
    rng: np.random.Generator,
    kind_p: Sequence[float] = (0.55, 0.2, 0.15, 0.1),
    recompress_share: float = 0.3,
    zoom_side: int = 320,
    view_long_side: int = 512,
    log: Callable[[str], None] | None = None,
    dof_grain: bool = False,
) -> list[CropSample]:
    """``per_photo`` crops of each full-resolution training photo (see the module docstring).

    ``dof_grain``: depth-of-field windows keep the photo's sensor grain (:func:`dof_window`).
    """
    crop_cfg = CropConfig()
    out: list[CropSample] = []
    t0 = time.time()
    for n, path in enumerate(photos):
        base = load_rgb(path)
        h, w = base.shape[:2]
        versions = [base, recompress(base, int(rng.integers(55, 91)))]
        tex = texture_map(base)
        view_scale = min(1.0, view_long_side / max(w, h))
        diag = math.hypot(w, h)
        dof_sigma = max(1.5, 0.0025 * max(w, h))  # the benchmark's depth-of-field strength
        grain = estimate_noise_sigma(base) if dof_grain else None
        for _ in range(per_photo):
            img = versions[1] if rng.random() < recompress_share else versions[0]
            kind = _kind(rng, kind_p)
            regions = select_regions(tex, 1, rng)
            if not regions:
                continue
            region = regions[0].box
            eff = context_box(_proposal_box(rng, region, zoom_side, w, h), (w, h), crop_cfg, view_scale)
            x1, y1, x2, y2 = (int(v) for v in eff.to_list(None))
            win = np.array(img[y1:y2, x1:x2])
            if kind.startswith("dof"):
                falloff = 0.35 * diag / math.hypot(*win.shape[:2]) * rng.uniform(0.3, 1.0)
                win = dof_window(win, rng, dof_sigma * rng.uniform(0.6, 1.0), falloff, grain)
            local = Box(region.x1 - x1, region.y1 - y1, region.x2 - x1, region.y2 - y1)
            target = local if kind.endswith("degraded") else None
            bad, box, name, sev = maker.degrade(win, target, rng)
            out.append(maker.sample(bad, win, box, name, sev, kind))
        if log is not None:
            log(f"  synthesized crops: {n + 1}/{len(photos)} photos, {len(out)} crops ({time.time() - t0:.0f}s)")
    return out


def clive_crops(
    maker: CropMaker,
    images: Sequence[Path],
    per_image: int,
    rng: np.random.Generator,
    kind_p: Sequence[float] = (0.45, 0.35, 0.1, 0.1),
    log: Callable[[str], None] | None = None,
    lattice: bool = False,
    dof_grain: bool = False,
) -> list[CropSample]:
    """``per_image`` crops of each (small) CLIVE photo: whole, or a random square sub-window.

    ``lattice``: also record each crop's banding evidence (the threshold crops need it);
    ``dof_grain``: depth-of-field windows keep the photo's sensor grain (:func:`dof_window`).
    """
    out: list[CropSample] = []
    t0 = time.time()
    for n, path in enumerate(images):
        img = load_rgb(path)
        h, w = img.shape[:2]
        grain = estimate_noise_sigma(img) if dof_grain else None
        for _ in range(per_image):
            kind = _kind(rng, kind_p)
            win = img
            if rng.random() < 0.3 and min(h, w) > 400:
                s = int(rng.uniform(320, min(h, w)))
                y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                win = img[y0 : y0 + s, x0 : x0 + s]
            win = np.array(win)
            if kind.startswith("dof"):
                win = dof_window(win, rng, rng.uniform(1.5, 5.0), rng.uniform(0.3, 1.0), grain)
            region = None
            if kind.endswith("degraded"):
                regions = select_regions(texture_map(win, analysis_side=256), 1, rng, min_area=0.02, max_area=0.25)
                region = regions[0].box if regions else None
            bad, box, name, sev = maker.degrade(win, region, rng)
            out.append(maker.sample(bad, win, box, name, sev, kind, lattice))
        if log is not None and ((n + 1) % 100 == 0 or n + 1 == len(images)):
            log(f"  CLIVE crops: {n + 1}/{len(images)} images, {len(out)} crops ({time.time() - t0:.0f}s)")
    return out


__all__ = ["CropMaker", "cell_change", "clive_crops", "dof_window", "photo_crops", "recompress", "window_labels"]
