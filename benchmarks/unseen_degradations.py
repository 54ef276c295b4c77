"""Six degradation families the classic model never trained on, registered out of tree.

Importing this module registers them (prefix ``unseen_``) in qprobe's
degradation registry for this process only: the package's own list, the
default benchmark recipe and ``qprobe train classic`` are unchanged. They
measure how far the detector's notion of "damage" reaches beyond its ten
training types (``benchmarks/eval_unseen_degradations.py``), and show how a
user adds a family without touching the package::

    import unseen_degradations  # noqa: F401  (from the benchmarks folder)
    from qprobe.bench.degradations import list_degradations
    list_degradations("unseen_*")

Three are near a training type (``near``: what the head might generalize
from), three are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from qprobe.bench.degradations import DEGRADATIONS
from qprobe.bench.degradations.base import Degradation, pick


@DEGRADATIONS.register("unseen_impulse_noise", family="noise", description="salt-and-pepper (dead / hot pixels)", near="")
@dataclass
class ImpulseNoise(Degradation):
    name = "unseen_impulse_noise"
    family = "noise"

    share: tuple[float, ...] = (0.003, 0.008, 0.02, 0.05, 0.1)
    """Share of pixels set to black or white, per severity."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        out = patch.copy()
        h, w = patch.shape[:2]
        hit = rng.random((h, w)) < pick(self.share, severity)
        value = np.where(rng.random((h, w)) < 0.5, 0.0, 255.0).astype(np.float32)
        out[hit] = value[hit][:, None]
        return out


@DEGRADATIONS.register("unseen_oversharpen", family="sharpness", description="unsharp-mask halos", near="ringing")
@dataclass
class Oversharpen(Degradation):
    name = "unseen_oversharpen"
    family = "sharpness"

    amount: tuple[float, ...] = (0.8, 1.5, 2.5, 4.0, 6.0)
    """Unsharp-mask gain (radius 2 px), per severity."""
    sigma: float = 2.0

    def margin(self, severity: int) -> int:
        return int(math.ceil(4 * self.sigma))

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        blur = ndimage.gaussian_filter(patch, (self.sigma, self.sigma, 0))
        return patch + np.float32(pick(self.amount, severity)) * (patch - blur)


@DEGRADATIONS.register("unseen_color_cast", family="color", description="local colour cast", near="")
@dataclass
class ColorCast(Degradation):
    name = "unseen_color_cast"
    family = "color"

    strength: tuple[float, ...] = (6.0, 10.0, 16.0, 24.0, 34.0)
    """Length of the (zero-mean, so luma-neutral) RGB shift in grey levels, per severity."""

    def sample(self, severity: int, rng: np.random.Generator) -> dict[str, Any]:
        v = rng.normal(size=3)
        v -= v.mean()
        return {"direction": (v / (np.linalg.norm(v) + 1e-9)).round(4).tolist()}

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        direction = np.asarray(sampled.get("direction", (0.7071, 0.0, -0.7071)), dtype=np.float32)
        return patch + np.float32(pick(self.strength, severity)) * direction


@DEGRADATIONS.register(
    "unseen_chromatic_aberration", family="color", description="lateral colour fringes (R and B shifted)", near=""
)
@dataclass
class ChromaticAberration(Degradation):
    name = "unseen_chromatic_aberration"
    family = "color"

    shift: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 6.0)
    """Displacement of the red and blue planes in opposite directions (px), per severity."""

    def margin(self, severity: int) -> int:
        return int(math.ceil(pick(self.shift, severity))) + 1

    def sample(self, severity: int, rng: np.random.Generator) -> dict[str, Any]:
        return {"angle_deg": round(float(rng.uniform(0.0, 180.0)), 2)}

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        d = pick(self.shift, severity)
        a = math.radians(float(sampled.get("angle_deg", 0.0)))
        dy, dx = d * math.sin(a), d * math.cos(a)
        out = patch.copy()
        out[..., 0] = ndimage.shift(patch[..., 0], (dy, dx), order=1, mode="nearest")
        out[..., 2] = ndimage.shift(patch[..., 2], (-dy, -dx), order=1, mode="nearest")
        return out


@DEGRADATIONS.register("unseen_median", family="smoothing", description="median-filter smoothing (watercolour)", near="smear")
@dataclass
class Median(Degradation):
    name = "unseen_median"
    family = "smoothing"

    size: tuple[float, ...] = (3, 5, 7, 9, 13)
    """Median window side (px), per severity."""

    def margin(self, severity: int) -> int:
        return int(pick(self.size, severity)) // 2 + 1

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        k = int(pick(self.size, severity))
        return ndimage.median_filter(patch, size=(k, k, 1))


@DEGRADATIONS.register("unseen_posterize", family="quantization", description="colour posterization", near="banding")
@dataclass
class Posterize(Degradation):
    name = "unseen_posterize"
    family = "quantization"

    levels: tuple[float, ...] = (24, 16, 10, 7, 4)
    """Levels per channel, per severity."""

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        step = np.float32(255.0 / (pick(self.levels, severity) - 1))
        return np.round(patch / step) * step


UNSEEN = tuple(DEGRADATIONS.list("unseen_*"))
"""The names registered here."""
