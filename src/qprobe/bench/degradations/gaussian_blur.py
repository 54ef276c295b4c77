"""Gaussian blur (defocus-like softening of a region)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("gaussian_blur", family="blur", description="isotropic Gaussian blur")
@dataclass
class GaussianBlur(Degradation):
    name = "gaussian_blur"
    family = "blur"

    sigma: tuple[float, ...] = (1.0, 1.8, 3.0, 4.5, 7.0)
    """Standard deviation in pixels, per severity."""

    def margin(self, severity: int) -> int:
        return int(math.ceil(3.0 * pick(self.sigma, severity))) + 1

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        s = pick(self.sigma, severity)
        return ndimage.gaussian_filter(patch, sigma=(s, s, 0), mode="reflect", truncate=3.0)
