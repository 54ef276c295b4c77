"""Image measures used by the benchmark tests (each a plain function of arrays)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def luma(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def hf_energy(a: np.ndarray) -> float:
    """Mean squared Laplacian of luma: falls with blur, rises with sharpening."""
    return float(np.mean(ndimage.laplace(luma(a)) ** 2))


def residual_var(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.var(a.astype(np.float64) - ref.astype(np.float64)))


def mse(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - ref.astype(np.float64)) ** 2))


def blockiness(a: np.ndarray, offset_x: int, offset_y: int, block: int = 8) -> float:
    """Mean |step| across block boundaries over the mean |step| elsewhere (1 = no blocking)."""
    y = luma(a)
    dx = np.abs(np.diff(y, axis=1))  # dx[:, j] is the step between columns j and j+1
    dy = np.abs(np.diff(y, axis=0))
    cols = np.arange(dx.shape[1])
    rows = np.arange(dy.shape[0])
    on_x = (cols + 1 - offset_x) % block == 0
    on_y = (rows + 1 - offset_y) % block == 0
    boundary = dx[:, on_x].mean() + dy[on_y, :].mean()
    inner = dx[:, ~on_x].mean() + dy[~on_y, :].mean()
    return float(boundary / max(inner, 1e-9))


def local_contrast(a: np.ndarray) -> float:
    return float(np.std(luma(a)))


def n_colours(a: np.ndarray) -> int:
    return int(np.unique(a.reshape(-1, 3), axis=0).shape[0])
