"""Camera (ISO-like) noise: signal-dependent luma noise plus blotchy chroma noise.

High-ISO sensor noise after demosaicing is neither white nor grey: its variance
grows with the signal (shot noise) and its colour component is spatially
correlated (blotches a few pixels wide). Model: ``Y' = Y + sqrt(a·Y + b)·n``
for luma and low-pass filtered Gaussian fields for the two chroma axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register(
    "iso_noise", family="noise", description="signal-dependent luma + blotchy chroma noise"
)
@dataclass
class IsoNoise(Degradation):
    name = "iso_noise"
    family = "noise"

    gain: tuple[float, ...] = (0.12, 0.25, 0.45, 0.75, 1.2)
    """Shot-noise gain ``a`` (variance per unit of signal), per severity."""
    read_sigma: tuple[float, ...] = (1.5, 2.5, 3.5, 5.0, 7.0)
    """Signal-independent (read) noise sigma on 0–255, per severity."""
    chroma_sigma: tuple[float, ...] = (4.0, 7.0, 11.0, 16.0, 24.0)
    """Chroma noise amplitude on 0–255 (after correlation), per severity."""
    chroma_blob: float = 1.6
    """Spatial correlation (Gaussian sigma, pixels) of the chroma noise."""

    def margin(self, severity: int) -> int:
        return int(np.ceil(3 * self.chroma_blob)) + 1

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        a = pick(self.gain, severity)
        b = pick(self.read_sigma, severity) ** 2
        y = patch[..., 0] * 0.299 + patch[..., 1] * 0.587 + patch[..., 2] * 0.114
        std = np.sqrt(a * np.clip(y, 0.0, 255.0) + b).astype(np.float32)
        n_y = rng.standard_normal(y.shape, dtype=np.float32) * std
        s = self.chroma_blob
        chroma = rng.standard_normal(patch.shape[:2] + (2,), dtype=np.float32)
        chroma = ndimage.gaussian_filter(chroma, sigma=(s, s, 0), mode="reflect")
        chroma *= np.float32(pick(self.chroma_sigma, severity)) / max(float(chroma.std()), 1e-6)
        cb, cr = chroma[..., 0], chroma[..., 1]
        # Inverse BT.601 colour difference: R = Y + 1.402 Cr, B = Y + 1.772 Cb, G from Y.
        out = np.empty_like(patch)
        out[..., 0] = patch[..., 0] + n_y + 1.402 * cr
        out[..., 1] = patch[..., 1] + n_y - 0.344136 * cb - 0.714136 * cr
        out[..., 2] = patch[..., 2] + n_y + 1.772 * cb
        return out
