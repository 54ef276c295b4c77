"""Motion blur: a linear kernel of random direction (camera or subject shake)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import DEGRADATIONS
from .base import Degradation, pick


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised, anti-aliased line of ``length`` pixels at ``angle_deg``."""
    half = max(1, int(math.ceil(length / 2.0)))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    t = math.radians(angle_deg)
    dx, dy = math.cos(t), math.sin(t)
    along = xx * dx + yy * dy
    across = -xx * dy + yy * dx
    k = np.clip(1.0 - np.abs(across), 0.0, 1.0) * np.clip(length / 2.0 + 0.5 - np.abs(along), 0.0, 1.0)
    k = k.astype(np.float32)
    return k / k.sum()


@DEGRADATIONS.register("motion_blur", family="blur", description="linear motion blur, random direction")
@dataclass
class MotionBlur(Degradation):
    name = "motion_blur"
    family = "blur"

    length: tuple[float, ...] = (5.0, 9.0, 15.0, 23.0, 35.0)
    """Length of the motion path in pixels, per severity (the direction is drawn from the seed)."""

    def margin(self, severity: int) -> int:
        return int(math.ceil(pick(self.length, severity) / 2.0)) + 2

    def sample(self, severity: int, rng: np.random.Generator) -> dict[str, Any]:
        return {"angle": round(float(rng.uniform(0.0, 180.0)), 3)}

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        angle = float(sampled["angle"]) if "angle" in sampled else self.sample(severity, rng)["angle"]
        k = line_kernel(pick(self.length, severity), angle)
        padded = np.pad(patch, ((k.shape[0] // 2,) * 2, (k.shape[1] // 2,) * 2, (0, 0)), mode="reflect")
        # imported here: scipy.signal takes ≈ 0.6 s to import, and the registry (which the scorer reads for
        # defect families) imports this module without applying it
        from scipy import signal

        out = signal.fftconvolve(padded, k[:, :, None], mode="valid", axes=(0, 1))
        return out.astype(np.float32)
