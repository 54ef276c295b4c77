"""``dummy``: a deterministic, dependency-free backend for tests and docs.

It exercises the whole agent loop with simple image statistics:

* the score maps the global view's sharpness (mean absolute Laplacian) and
  contrast (standard deviation of luma) to 1–5 through fixed curves;
* it zooms into the highest-variance blocks of the global view (busiest
  texture, where local damage shows best), one per turn;
* in each crop it flags ``noise`` when the crop's noise estimate (median
  absolute Laplacian, Immerkær-style) is far above the global view's.

It is not a quality model: use ``classic`` to score photos.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from qprobe.agent.actions import Action, Answer, Zoom
from qprobe.agent.env import EnvConfig, Observation, Turn
from qprobe.agent.loop import Policy
from qprobe.backends import BACKENDS
from qprobe.backends.base import ProbingBackend
from qprobe.types import Box, Defect, clamp_score


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma as float32."""
    a = rgb.astype(np.float32)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def laplacian_abs(gray: np.ndarray) -> np.ndarray:
    """|4-neighbour Laplacian| of the interior pixels."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return np.zeros((1, 1), np.float32)
    c = gray[1:-1, 1:-1]
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * c
    return np.abs(lap)


def variance_blocks(gray: np.ndarray, grid: int) -> list[tuple[float, int, int, int, int]]:
    """(variance, x1, y1, x2, y2) of a ``grid x grid`` tiling, highest variance first."""
    h, w = gray.shape
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    blocks = []
    for i in range(grid):
        for j in range(grid):
            tile = gray[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            if tile.size:
                blocks.append((float(tile.var()), int(xs[j]), int(ys[i]), int(xs[j + 1]), int(ys[i + 1])))
    blocks.sort(key=lambda b: (-b[0], b[2], b[1]))
    return blocks


class DummyPolicy:
    """Zoom into the busiest blocks, then answer from global statistics."""

    def __init__(self, zooms: int, grid: int, noise_ratio: float) -> None:
        self.zooms = zooms
        self.grid = grid
        self.noise_ratio = noise_ratio
        self._plan: list[Box] = []
        self._score = 3.0
        self._noise_ref = 1.0
        self._defects: list[Defect] = []
        self._seen = 0

    def _plan_from_view(self, view: np.ndarray, inv_scale: float) -> None:
        gray = luma(view)
        lap = laplacian_abs(gray)
        sharp = float(lap.mean())
        contrast = float(gray.std())
        s_sharp = 1.0 - math.exp(-sharp / 6.0)
        s_contrast = 1.0 - math.exp(-contrast / 40.0)
        self._score = clamp_score(1.0 + 4.0 * (0.6 * s_sharp + 0.4 * s_contrast))
        self._noise_ref = max(float(np.median(lap)), 0.5)
        blocks = variance_blocks(gray, self.grid)[: self.zooms]
        self._plan = [Box(x1 * inv_scale, y1 * inv_scale, x2 * inv_scale, y2 * inv_scale) for _, x1, y1, x2, y2 in blocks]

    def _observe(self, obs: Observation) -> None:
        if obs.kind == "global" and obs.image is not None:
            self._plan_from_view(obs.image, 1.0 / obs.scale)
        elif obs.kind == "crop" and obs.image is not None and obs.box is not None:
            noise = float(np.median(laplacian_abs(luma(obs.image))))
            if noise > self.noise_ratio * self._noise_ref:
                conf = min(1.0, noise / (2 * self.noise_ratio * self._noise_ref))
                self._defects.append(Defect(obs.box, "noise", severity=None, confidence=conf))

    def act(self, history: Sequence[Turn]) -> Action:
        for turn in history[self._seen :]:  # forced probes may precede the first call
            self._observe(turn.observation)
        self._seen = len(history)
        if self._plan and history[-1].observation.zooms_left > 0:
            return Zoom(self._plan.pop(0))
        reasons = [f"sharpness/contrast statistics give {self._score:.2f}"]
        return Answer(self._score, tuple(self._defects), tuple(reasons))


@BACKENDS.register("dummy", needs_torch=False, deterministic=True, description="statistics-only test backend")
class DummyBackend(ProbingBackend):
    """Deterministic statistics-only backend (tests, docs)."""

    name = "dummy"

    def __init__(
        self,
        zooms: int = 2,
        grid: int = 4,
        noise_ratio: float = 3.0,
        view_long_side: int = 672,
        max_zooms: int = 4,
    ) -> None:
        super().__init__(EnvConfig(view_long_side=view_long_side, max_zooms=max_zooms))
        self.zooms = zooms
        self.grid = grid
        self.noise_ratio = noise_ratio

    def make_policy(
        self, *, seed: int | None = None, image: np.ndarray | None = None, max_zooms: int | None = None
    ) -> Policy:
        return DummyPolicy(self.zooms, self.grid, self.noise_ratio)
