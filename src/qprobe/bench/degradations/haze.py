"""Local contrast loss / haze: the region is veiled towards a bright airlight.

Atmospheric scattering model ``I' = t·I + (1 − t)·A`` with transmission
``t`` falling with severity and airlight ``A`` half-way between a light grey
and the region's own mean colour, so contrast and saturation drop while the
region brightens only moderately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("haze", family="contrast", description="local contrast loss / haze veil")
@dataclass
class Haze(Degradation):
    name = "haze"
    family = "contrast"

    veil: tuple[float, ...] = (0.15, 0.25, 0.38, 0.5, 0.65)
    """``1 − t``: fraction of airlight mixed in, per severity."""
    airlight: float = 215.0
    """Brightness of the airlight on 0–255."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        v = np.float32(pick(self.veil, severity))
        mean = patch.reshape(-1, 3).mean(axis=0)
        air = (0.5 * self.airlight + 0.5 * mean).astype(np.float32)
        return (1.0 - v) * patch + v * air
