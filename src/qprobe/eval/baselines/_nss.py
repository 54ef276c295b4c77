"""Natural-scene-statistics building blocks shared by NIQE, BRISQUE and PIQE."""

from __future__ import annotations

import numpy as np

MATLAB_LUMA = (0.298936021293775, 0.587043074451121, 0.114020904255103)
"""MATLAB ``rgb2gray`` weights (ITU-R BT.601 luma)."""
SKIMAGE_LUMA = (0.2125, 0.7154, 0.0721)
"""scikit-image ``rgb2gray`` weights (ITU-R BT.709), used by the BRISQUE reference."""


def luma(rgb: np.ndarray, weights: tuple[float, float, float] = MATLAB_LUMA) -> np.ndarray:
    """Weighted sum of the RGB channels as float64, same range as the input."""
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    x = rgb[..., :3].astype(np.float64)
    return x[..., 0] * weights[0] + x[..., 1] * weights[1] + x[..., 2] * weights[2]


def gauss_window(radius: int = 3, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """Normalised 1-D Gaussian of ``2 * radius + 1`` taps."""
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * k * k / (sigma * sigma))
    return w / w.sum()


def mscn(
    img: np.ndarray,
    c: float = 1.0,
    mode: str = "constant",
    window: np.ndarray | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + c)``.

    ``mu``/``sigma`` are local Gaussian-weighted mean and deviation (7 taps,
    sigma 7/6 by default), computed separably with ``scipy.ndimage``;
    ``mode`` is the border rule ("constant" = zero padding, "nearest" =
    replicate).
    """
    from scipy.ndimage import correlate1d

    w = gauss_window() if window is None else window
    x = img.astype(dtype)
    mu = correlate1d(correlate1d(x, w, 0, mode=mode), w, 1, mode=mode)
    sq = correlate1d(correlate1d(x * x, w, 0, mode=mode), w, 1, mode=mode)
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (x - mu) / (sigma + c)
