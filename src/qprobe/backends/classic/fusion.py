"""Fusing the global score, the crop deficits and the defect burden into 1–5.

``fused = w0 + w1 · s_global + w2 · deficit + w3 · burden``, clamped to 1–5:

* ``s_global``: the quality regressor on the global view;
* ``deficit``: ``min(0, min over crops of s_crop − s_global)`` — only a crop
  that looks *worse* than the whole counts, so zooming into clean regions
  cannot move the score (the crop bias the paper warns about);
* ``burden``: :func:`~qprobe.backends.classic.detector.burden` of the defects.

The weights are fitted by least squares at training time and stored with
the network; :data:`DEFAULT_WEIGHTS` is the identity on ``s_global``.
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


def fit_fusion(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-2) -> tuple[float, ...]:
    """Ridge least squares (intercept unpenalised); burden and deficit weights kept ≤ 0 / ≥ 0."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    reg = ridge * np.eye(x.shape[1])
    reg[0, 0] = 0.0
    w = np.linalg.solve(x.T @ x + reg, x.T @ y)
    # monotone sanity: a worse crop or more damage never raises the score
    w[2] = max(w[2], 0.0)
    w[3] = min(w[3], 0.0)
    return tuple(float(v) for v in w)
