"""Colour banding: coarse quantization of each channel (false contours, posterization)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("banding", family="quantization", description="colour quantization / banding")
@dataclass
class Banding(Degradation):
    name = "banding"
    family = "quantization"

    levels: tuple[float, ...] = (24.0, 14.0, 9.0, 6.0, 4.0)
    """Grey levels kept per channel, per severity."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        step = np.float32(255.0 / (pick(self.levels, severity) - 1.0))
        return np.rint(patch / step) * step
