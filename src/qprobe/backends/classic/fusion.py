"""Fusing the global score, the crop deficits and the defect burden into 1–5.

``fused = w0 + w1 · s_global + w2 · deficit + w3 · burden``, clamped to 1–5:

* ``s_global``: the quality regressor on the global view;
* ``deficit``: ``min(0, min over crops of s_crop − s_global)`` — only a crop
  that looks *worse* than the whole counts, so zooming into clean regions
  cannot move the score (the crop bias the paper warns about);
* ``burden``: :func:`~qprobe.backends.classic.detector.burden` of the defects.

The weights are fitted by least squares at training time and stored with
the network. ``w1`` stays fixed at 1: the regressor is already calibrated
to human MOS (CLIVE), and a benchmark whose proxy MOS is the same for every
clean photo would otherwise teach the fusion to ignore global quality.
:data:`DEFAULT_WEIGHTS` is used when a weight file carries none.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qprobe.types import clamp_score

DEFAULT_WEIGHTS: tuple[float, float, float, float] = (0.0, 1.0, 0.5, -2.0)


def fusion_features(s_global: float, crop_scores: Sequence[float], burden_value: float) -> np.ndarray:
    deficit = min(0.0, min((s - s_global for s in crop_scores), default=0.0))
    return np.array([1.0, s_global, deficit, burden_value], dtype=np.float64)


def fuse(features: np.ndarray, weights: Sequence[float]) -> float:
    return clamp_score(float(np.dot(features, np.asarray(weights, dtype=np.float64))))


def fit_fusion(
    features: np.ndarray,
    targets: np.ndarray,
    ridge: float = 1e-2,
    global_weight: float | None = 1.0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, ...]:
    """Weighted ridge least squares (intercept unpenalised) with ``w1`` fixed at ``global_weight``.

    ``global_weight=None`` fits ``w1`` too. The deficit weight is kept ≥ 0
    and the burden weight ≤ 0: a worse crop or more damage never raises the
    score.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if sample_weight is not None:
        sw = np.sqrt(np.asarray(sample_weight, dtype=np.float64) / np.mean(sample_weight))
        x, y = x * sw[:, None], y * sw
    free = list(range(x.shape[1]))
    if global_weight is not None:
        y = y - global_weight * x[:, 1]
        free.remove(1)
    xf = x[:, free]
    reg = ridge * np.eye(len(free))
    reg[0, 0] = 0.0
    wf = np.linalg.solve(xf.T @ xf + reg, xf.T @ y)
    w = np.zeros(x.shape[1])
    w[free] = wf
    if global_weight is not None:
        w[1] = global_weight
    w[2] = max(w[2], 0.0)
    w[3] = min(w[3], 0.0)
    return tuple(float(v) for v in w)
