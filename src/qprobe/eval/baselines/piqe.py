"""PIQE: Perception-based Image Quality Evaluator (Venkatanath N et al., NCC 2015).

Opinion-unaware and training-free: the grey image is MSCN-normalised
(7x7 Gaussian, sigma 7/6, replicated border, C = 1) and cut into 16x16
blocks. A block is *active* when its MSCN variance exceeds 0.1. An active
block is *impaired* (noticeable artifact, e.g. blocking) when any 6-pixel
segment of one of its four edges has a standard deviation below 0.1, and
*noisy* when its deviation sigma exceeds twice
``beta = |sigma - r| / max(sigma, r)``, ``r`` the ratio of the deviation of
its two centre columns (8 and 9, 1-based) to that of the "surround". As in
MATLAB's implementation (deleting column 8, then column 9 of the *shortened*
block), the surround leaves out columns 8 and 10; we keep that quirk so that
scores match the reference. Score:

    PIQE = 100 * (sum_active [impaired * (1 - var) + noisy * var] + 1) / (N_active + 1)

in [0, 100], lower is better. Follows MATLAB's ``piqe`` (as re-implemented
and tested by ``pypiqe``): MATLAB ``rgb2gray`` rounded to 8 bit, symmetric
padding to a multiple of 16, rescaling by the image maximum. Vectorised over
blocks; the block masks are returned by :func:`piqe_maps` for localisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qprobe.eval.baselines import BASELINES
from qprobe.eval.baselines._nss import MATLAB_LUMA, luma, mscn
from qprobe.eval.baselines.base import Baseline

BLOCK = 16
ACTIVITY_T = 0.1
IMPAIRED_T = 0.1
SEGMENT = 6


@dataclass
class PIQEResult:
    score: float
    active: np.ndarray  # (rows, cols) bool per block
    impaired: np.ndarray
    noisy: np.ndarray


def _segment_std(edges: np.ndarray) -> np.ndarray:
    """Std (ddof 1) of every run of SEGMENT contiguous values along the last axis."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(edges, SEGMENT, axis=-1).std(axis=-1, ddof=1)


def piqe_maps(gray: np.ndarray) -> PIQEResult:
    """PIQE score and per-block masks of a grey image (values 0–255)."""
    h, w = gray.shape
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    img = np.pad(gray.astype(np.float64), ((0, ph), (0, pw)), mode="symmetric")
    peak = img.max()
    if peak <= 0:
        raise ValueError("PIQE is undefined for an all-black image")
    img = np.round(255.0 * img / peak)
    m = mscn(img, c=1.0, mode="nearest")
    rows, cols = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    blocks = m.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3)  # (r, c, 16, 16)
    var = blocks.reshape(rows, cols, -1).var(axis=-1, ddof=1)
    active = var > ACTIVITY_T
    edges = np.stack(
        [blocks[..., 0, :], blocks[..., :, BLOCK - 1], blocks[..., BLOCK - 1, :], blocks[..., :, 0]], axis=2
    )
    impaired = (_segment_std(edges) < IMPAIRED_T).any(axis=(-1, -2)) & active
    c1 = (BLOCK - 1 + 1) // 2 - 1  # 0-based index of the first centre column
    center = blocks[..., :, c1 : c1 + 2].reshape(rows, cols, -1)
    # surround = block without columns c1 and c1 + 2 (the reference's deletion order, see above)
    keep = [j for j in range(BLOCK) if j not in (c1, c1 + 2)]
    surround = blocks[..., :, keep].reshape(rows, cols, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = center.std(axis=-1, ddof=1) / surround.std(axis=-1, ddof=1)
        ratio = np.where(np.isfinite(ratio), ratio, 0.0)
        sigma = np.sqrt(var)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
    noisy = (sigma > 2.0 * beta) & active
    dist = np.where(impaired, 1.0 - var, 0.0) + np.where(noisy, var, 0.0)
    n_active = int(active.sum())
    score = 100.0 * (float(dist[active].sum()) + 1.0) / (n_active + 1.0)
    return PIQEResult(score, active, impaired, noisy)


@BASELINES.register(
    "piqe",
    higher_is_better=False,
    raw_range="0..100 (lower is better)",
    needs_torch=False,
    reference="Venkatanath N et al., NCC 2015 (MATLAB piqe)",
)
class PIQE(Baseline):
    """PIQE on the 8-bit MATLAB grey image; no parameters to load."""

    name = "piqe"
    center = 40.0
    width = 15.0

    def raw(self, rgb: np.ndarray) -> float:
        gray = np.round(luma(rgb, MATLAB_LUMA))
        return piqe_maps(gray).score
