"""Pixelation: down-sampling by block averaging, then nearest-neighbour up-sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("pixelate", family="resampling", description="down-up sampling (blocky pixels)")
@dataclass
class Pixelate(Degradation):
    name = "pixelate"
    family = "resampling"

    block: tuple[float, ...] = (3.0, 5.0, 8.0, 12.0, 18.0)
    """Size of the output pixel blocks in pixels, per severity."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        b = int(pick(self.block, severity))
        h, w = patch.shape[:2]
        hb, wb = -(-h // b), -(-w // b)
        padded = np.pad(patch, ((0, hb * b - h), (0, wb * b - w), (0, 0)), mode="edge")
        means = padded.reshape(hb, b, wb, b, 3).mean(axis=(1, 3), dtype=np.float32)
        up = np.repeat(np.repeat(means, b, axis=0), b, axis=1)
        return up[:h, :w]
