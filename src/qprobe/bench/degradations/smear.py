"""Texture smearing: edge-preserving over-smoothing, as generative models produce.

A self-guided filter (He et al., 2010) flattens fine texture (grass, skin,
fabric turn waxy) while keeping strong edges, the "plastic" look of
over-denoised or generated images that a plain blur does not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from . import DEGRADATIONS
from .base import Degradation, pick


def guided_smooth(patch: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Per-channel self-guided filter with a box window of ``2·radius + 1``."""
    size = (2 * radius + 1, 2 * radius + 1, 1)
    mean = ndimage.uniform_filter(patch, size=size, mode="reflect")
    var = ndimage.uniform_filter(patch * patch, size=size, mode="reflect") - mean * mean
    a = var / (var + np.float32(eps))
    b = mean - a * mean
    a = ndimage.uniform_filter(a, size=size, mode="reflect")
    b = ndimage.uniform_filter(b, size=size, mode="reflect")
    return a * patch + b


@DEGRADATIONS.register("smear", family="smearing", description="edge-preserving texture smearing")
@dataclass
class Smear(Degradation):
    name = "smear"
    family = "smearing"

    radius: tuple[float, ...] = (2.0, 3.0, 4.0, 6.0, 8.0)
    """Guided-filter window radius in pixels, per severity."""
    eps: tuple[float, ...] = (150.0, 350.0, 700.0, 1300.0, 2500.0)
    """Guided-filter regulariser (variance on the 0–255 scale below which texture is flattened)."""
    passes: int = 2
    """Filter iterations (more passes: flatter, waxier texture)."""

    def margin(self, severity: int) -> int:
        return 2 * self.passes * int(pick(self.radius, severity)) + 2

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        r, e = int(pick(self.radius, severity)), pick(self.eps, severity)
        out = patch
        for _ in range(self.passes):
            out = guided_smooth(out, r, e)
        return out
