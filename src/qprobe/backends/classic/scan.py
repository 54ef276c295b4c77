"""Native-resolution anomaly scan: where should the classic policy zoom?

The whole original is scanned once, cheaply, in numpy: per ``cell`` x
``cell`` block of luma (and chroma) it measures

* high-frequency energy (|Laplacian|), mid-frequency energy (gradient on a
  2x-reduced copy) and their ratio — blur lowers it, noise raises it;
* local variance, JPEG-grid blockiness (steps across 8-px boundaries vs.
  inside), the share of flat steps (banding, smearing) and chroma
  high-frequency energy (chroma noise);

then each feature's deviation from the median of its neighbourhood of
blocks at two scales (median of 7 x 7, mean of 17 x 17 blocks) and from the image's
median: an injected local defect stands out from its surroundings (the
small scale finds small regions and the borders of large ones, the large
scale the interior of large ones), smooth depth-of-field blur changes
slowly and does not. A logistic model trained on
benchmark builds (``qprobe train classic``) turns the features into
P(defect) per block. The policy then makes the map relative to its image
(:func:`image_relative`): where the scan fires on more than a tenth of a
photo, only the blocks that stand out most from the rest count. Nothing
here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageFilter
from scipy import ndimage

FEATURE_NAMES: tuple[str, ...] = (
    "log_hf",
    "log_mf",
    "hf_mf_ratio",
    "log_var",
    "blockiness",
    "flat_share",
    "log_chroma_hf",
)

EPS = 1e-3


@dataclass
class ScanMap:
    """Per-block features (``rows x cols x F``) and the block geometry."""

    features: np.ndarray
    cell: int
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.features.shape[0], self.features.shape[1]


_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
_ABS2_LUT = [min(255, 2 * abs(v - 128)) for v in range(256)]  # |lap| * 2, clipped
_ZERO_LUT = [255 if v == 128 else 0 for v in range(256)]  # flat (zero-Laplacian) pixels


def _blocks(img: Image.Image, cell: int, rows: int, cols: int) -> np.ndarray:
    """Block means of an 8-bit single-band image (C-speed box reduction)."""
    img = img.crop((0, 0, cols * cell, rows * cell))
    return np.asarray(img.reduce(cell), dtype=np.float32)


def _np_blocks(a: np.ndarray, cell_r: int, cell_c: int, rows: int, cols: int) -> np.ndarray:
    a = a[: rows * cell_r, : cols * cell_c]
    return a.reshape(rows, cell_r, cols, cell_c).mean(axis=(1, 3))


SCAN_IMPLS: tuple[str, ...] = ("auto", "cv", "pil")
"""``pil``: the Pillow reference; ``cv``: the same features on OpenCV (:mod:`.scan_cv`); ``auto``: cv if installed."""


def block_features(
    rgb: np.ndarray | Image.Image, cell: int = 32, workers: int = 2, impl: str = "auto"
) -> ScanMap:
    """Raw per-block features of an RGB image at native resolution.

    Heavy per-pixel work runs in C: OpenCV's kernels (``impl="cv"``, the
    default when OpenCV is installed) or Pillow's filters (``"pil"``, the
    reference; both give the same features); numpy only touches block sums
    and 1/8 of the columns. All release the GIL, so ``workers`` threads scan
    horizontal strips of the image at once; strips of at most
    ``STRIP_PIXELS`` also bound the scan's memory on very large images. A
    strip is cut with one block of margin above and below (every filter
    reaches at most 2 pixels), so the features do not depend on the number
    of strips.
    """
    from qprobe.backends.classic import scan_cv

    if impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan implementation {impl!r}; choose one of {', '.join(SCAN_IMPLS)}")
    use_cv = impl == "cv" or (impl == "auto" and scan_cv.cv2_module() is not None)
    if use_cv and scan_cv.cv2_module() is None:
        raise RuntimeError("the 'cv' scan needs OpenCV: pip install opencv-python-headless (or qprobe[classic])")
    arr = np.asarray(rgb.convert("RGB")) if isinstance(rgb, Image.Image) else np.asarray(rgb)
    orig_h, orig_w = arr.shape[:2]
    if min(orig_w, orig_h) < 2 * cell:
        cell = max(8, (min(orig_w, orig_h) // 2) // 8 * 8)
    if min(orig_w, orig_h) < 2 * cell:  # tiny image: replicate its border up to two cells
        arr = np.pad(arr, ((0, max(0, 2 * cell - orig_h)), (0, max(0, 2 * cell - orig_w)), (0, 0)), mode="edge")
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    rows, cols = max(1, h // cell), max(1, w // cell)
    half = min(w, h) >= 4 * cell  # the mid-frequency and chroma features work on a 2x-reduced copy
    features: Callable[..., np.ndarray]
    if use_cv:  # strips are views of the array
        features = scan_cv.strip_features

        def cut(y0: int, y1: int) -> Any:
            return arr[y0:y1]

    else:  # one Pillow image; strips are crops of it
        features, pil = _strip_features_pil, Image.fromarray(arr, "RGB")

        def cut(y0: int, y1: int) -> Any:
            return pil.crop((0, y0, w, y1))

    # at least one strip per worker, and strips of at most STRIP_PIXELS: a 50 MP scan then holds the
    # intermediates of two 8 MP strips at a time, not of the whole image
    n = max(int(workers), math.ceil(w * h / STRIP_PIXELS))
    n = max(1, min(n, rows // STRIP_MIN_ROWS))
    if n == 1:
        feats = features(cut(0, h), cell, half, rows, cols)
    else:
        bounds = [round(rows * k / n) for k in range(n + 1)]

        def strip(k: int) -> np.ndarray:
            r0, r1 = bounds[k], bounds[k + 1]
            m0, m1 = max(0, r0 - 1), min(rows, r1 + 1)  # one block of margin on each inner side
            y1 = h if r1 == rows else m1 * cell  # the last strip keeps the image's bottom border
            return features(cut(m0 * cell, y1), cell, half, m1 - m0, cols)[r0 - m0 : r1 - m0]

        with ThreadPoolExecutor(max(1, min(int(workers), n))) as pool:
            feats = np.concatenate(list(pool.map(strip, range(n))), axis=0)
    return ScanMap(feats, cell, orig_w, orig_h)


STRIP_MIN_ROWS = 8
"""A strip has at least this many block rows (each strip costs two rows of margin)."""

STRIP_PIXELS = 1 << 23
"""A strip has at most about this many pixels (8.4 MP: a 4K image is two strips, 50 MP six)."""


def blockiness(y: np.ndarray, cell: int, rows: int, cols: int) -> np.ndarray:
    """JPEG-grid blockiness per block: log of the mean step across columns 8k-1 | 8k over that at 8k+3 | 8k+4."""
    h = y.shape[0]
    on = np.abs(y[:, 8::8].astype(np.int16) - y[:, 7:-1:8].astype(np.int16)).astype(np.float32)
    off = np.abs(y[:, 4::8].astype(np.int16) - y[:, 3:-1:8].astype(np.int16)).astype(np.float32)
    n8 = min(on.shape[1], off.shape[1])
    per = cell // 8
    rb, cb = min(rows, h // cell), min(cols, n8 // max(per, 1))
    block = np.zeros((rows, cols), np.float32)
    if per >= 1 and rb > 0 and cb > 0:
        block[:rb, :cb] = np.log(
            (_np_blocks(on[:, :n8], cell, per, rb, cb) + 0.5) / (_np_blocks(off[:, :n8], cell, per, rb, cb) + 0.5)
        )
    return block


def _strip_features_pil(pil: Image.Image, cell: int, use_half: bool, rows: int, cols: int) -> np.ndarray:
    """rows x cols x F features of an RGB image (or a horizontal strip of one): the Pillow reference."""
    w, h = pil.size
    luma = pil.convert("L")
    lap = luma.filter(_LAPLACIAN)
    m_hf = _blocks(lap.point(_ABS2_LUT), cell, rows, cols) / 2.0
    flat = _blocks(lap.point(_ZERO_LUT), cell, rows, cols) / 255.0
    del lap
    half = luma.reduce(2) if use_half else luma
    hs = half.size[0] / float(w)
    hcell = max(1, int(round(cell * hs)))
    y2 = np.asarray(half, dtype=np.float32)
    g = np.zeros_like(y2)
    g[:, 1:] += np.abs(np.diff(y2, axis=1))
    g[1:, :] += np.abs(np.diff(y2, axis=0))
    r2, c2 = min(rows, y2.shape[0] // hcell), min(cols, y2.shape[1] // hcell)
    m_mf = np.zeros((rows, cols), np.float32)
    var = np.zeros((rows, cols), np.float32)
    m_mf[:r2, :c2] = _np_blocks(g, hcell, hcell, r2, c2)
    mean = _np_blocks(y2, hcell, hcell, r2, c2)
    var[:r2, :c2] = np.maximum(_np_blocks(y2 * y2, hcell, hcell, r2, c2) - mean * mean, 0.0)
    del g, y2
    block = blockiness(np.asarray(luma), cell, rows, cols)
    # chroma high frequencies, on the half-resolution image
    small = pil.reduce(2) if use_half else pil
    _, cb_img, cr_img = small.convert("YCbCr").split()
    chroma = np.zeros((rows, cols), np.float32)
    for band in (cb_img, cr_img):
        chroma[:r2, :c2] += _blocks(band.filter(_LAPLACIAN).point(_ABS2_LUT), hcell, r2, c2) / 2.0
    return stack_features(m_hf, m_mf, var, block, flat, chroma)


def stack_features(
    m_hf: np.ndarray, m_mf: np.ndarray, var: np.ndarray, block: np.ndarray, flat: np.ndarray, chroma: np.ndarray
) -> np.ndarray:
    """The per-block measurements → rows x cols x F features, in ``FEATURE_NAMES`` order."""
    return np.stack(
        [
            np.log(m_hf + EPS),
            np.log(m_mf + EPS),
            np.log((m_hf + 0.5) / (m_mf + 0.5)),
            np.log(var + 1.0),
            block,
            flat,
            np.log(chroma + EPS),
        ],
        axis=2,
    ).astype(np.float32)


LARGE_RADIUS = 8
"""Radius (in blocks) of the second, large context scale."""


def _median_map(f: np.ndarray, radius: int) -> np.ndarray:
    """Per feature, the median of each block's (2r+1)² neighbourhood (edges replicated).

    Equal to ``ndimage.median_filter(..., mode="nearest")`` per feature; one
    partition over all windows at once is ≈ 1.4x faster on a 4K image's map.
    """
    size = 2 * radius + 1
    pad = np.pad(f, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    win = sliding_window_view(pad, (size, size), axis=(0, 1)).reshape(*f.shape, size * size)
    mid = size * size // 2
    return np.partition(win, mid, axis=-1)[..., mid]


def context_features(scan: ScanMap, radius: int = 3) -> np.ndarray:
    """Per block: [features − image median, − local median, − large-scale mean, 1] (rows x cols x 3F+1)."""
    f = scan.features
    global_med = np.median(f.reshape(-1, f.shape[2]), axis=0)
    small = _median_map(f, radius)
    r = max(LARGE_RADIUS, 2 * radius + 1)
    large = ndimage.uniform_filter(f, size=(2 * r + 1, 2 * r + 1, 1), mode="nearest")  # mean: cheap at this size
    return np.concatenate([f - global_med, f - small, f - large, np.ones_like(f[..., :1])], axis=2).astype(np.float32)


def scan_logits(ctx: np.ndarray, weights: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
    """The scan model's logit per block (rows x cols) from context features and the trained weights.

    ``hidden`` (``D x H``) with ``weights`` (``H + 1``) is a one-hidden-layer
    model; without ``hidden``, ``weights`` (``D``) is a logistic model.
    """
    x = ctx.reshape(-1, ctx.shape[-1])
    # numpy's own loops, not BLAS: OpenBLAS splits even this 0.1-ms product over every core and its idle
    # worker then busy-waits for ~0.1 s, on the cores the zoom crops need next (1.5 ms here instead)
    if hidden is not None:
        z = np.maximum(np.einsum("ij,jk->ik", x, hidden), 0.0)
        logit = np.einsum("ij,j->i", z, weights[:-1]) + weights[-1]
    else:
        logit = np.einsum("ij,j->i", x, weights)
    return logit.reshape(ctx.shape[:2])


def logit_of(p: float) -> float:
    """The logit of probability ``p`` (a threshold on the scan map, in logit units)."""
    return float(np.log(p / (1.0 - p)))


def image_relative(logit: np.ndarray, threshold: float, max_share: float | None) -> tuple[np.ndarray, float]:
    """``logit`` lowered until at most ``max_share`` of the blocks lie above ``threshold``; and by how much.

    Local damage is what stands out from the rest of its photo. Where the
    scan fires on more than ``max_share`` of an image (a photo's own sensor
    grain over a large smooth wall, its compression, a texture everywhere),
    that is the photo's character, and the global score already sees it:
    every logit is lowered by the same amount, until the block at the
    ``1 - max_share`` quantile sits on ``threshold`` (a probability). The
    order of the blocks is kept, so the blocks that stand out most still
    count as evidence and draw the zooms; an image whose scan fires on at
    most ``max_share`` of its blocks is left exactly as it is. ``None`` or
    ``>= 1``: no change.
    """
    if max_share is None or max_share >= 1.0 or logit.size == 0:
        return logit, 0.0
    if max_share <= 0.0:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    excess = float(np.quantile(logit, 1.0 - max_share)) - logit_of(threshold)
    if excess <= 0.0:
        return logit, 0.0
    return logit - excess, excess


def probabilities(logit: np.ndarray) -> np.ndarray:
    """Logits → probabilities (float32, the scan map's type)."""
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))).astype(np.float32)


def probability_map(ctx: np.ndarray, weights: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
    """P(defect) per block from context features and the trained weights (see :func:`scan_logits`)."""
    return probabilities(scan_logits(ctx, weights, hidden))


def relative_probability_map(
    scan: ScanMap,
    weights: np.ndarray,
    hidden: np.ndarray | None,
    threshold: float,
    radius: int,
    max_share: float | None,
) -> tuple[np.ndarray, float, float]:
    """The scan model's P(defect) per block of ``scan``, made relative to its image (:func:`image_relative`).

    Also returns the share of blocks above ``threshold`` before, and how far
    the logits were lowered (0: not at all). What the classic policy plans
    its zooms and judges agreement on; a replay with another scan model
    computes it the same way.
    """
    logit = scan_logits(context_features(scan, radius=radius), weights, hidden)
    share = float(np.mean(logit > logit_of(threshold))) if logit.size else 0.0
    logit, shift = image_relative(logit, threshold, max_share)
    return probabilities(logit), share, shift
