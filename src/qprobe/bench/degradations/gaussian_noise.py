"""Additive white Gaussian noise, independent per pixel and channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("gaussian_noise", family="noise", description="additive white Gaussian noise")
@dataclass
class GaussianNoise(Degradation):
    name = "gaussian_noise"
    family = "noise"

    sigma: tuple[float, ...] = (4.0, 7.0, 11.0, 17.0, 26.0)
    """Noise standard deviation on the 0–255 scale, per severity."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        noise = rng.standard_normal(patch.shape, dtype=np.float32)
        return patch + noise * np.float32(pick(self.sigma, severity))
