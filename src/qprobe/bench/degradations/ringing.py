"""Ringing / over-sharpening: strong unsharp masking leaves halos along edges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("ringing", family="sharpening", description="over-sharpening halos (unsharp mask)")
@dataclass
class Ringing(Degradation):
    name = "ringing"
    family = "sharpening"

    amount: tuple[float, ...] = (1.0, 2.0, 3.5, 5.5, 8.0)
    """Unsharp-mask gain, per severity."""
    radius: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5)
    """Unsharp-mask Gaussian sigma in pixels (halo width), per severity."""

    def margin(self, severity: int) -> int:
        return int(math.ceil(3.0 * pick(self.radius, severity))) + 1

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        r = pick(self.radius, severity)
        low = ndimage.gaussian_filter(patch, sigma=(r, r, 0), mode="reflect", truncate=3.0)
        return patch + np.float32(pick(self.amount, severity)) * (patch - low)
