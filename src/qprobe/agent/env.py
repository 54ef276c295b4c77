"""The probing environment: one image, a global view, full-resolution zooms.

``ProbeEnv`` is used in the same way by inference, by trajectory generation
for SFT and by RL rollouts::

    env = ProbeEnv(EnvConfig(max_zooms=4))
    obs = env.reset(image, path="photo.jpg")     # the global view
    obs, done = env.step(Zoom(Box(100, 80, 400, 300)))
    obs, done = env.step(Answer(3.7))
    env.trajectory                                # replayable record

Zoom crops are cut from the **full-resolution original** (never from the
global view) after context-aware enlargement (:mod:`qprobe.agent.cropping`).
An invalid action, a zoom beyond the budget or an unacceptable answer gives
an ``error`` observation and the episode continues; the episode ends on a
valid answer or when ``max_turns`` is reached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from qprobe.agent.actions import Action, Answer, Invalid, Zoom, check_answer, describe
from qprobe.agent.cropping import CropConfig, CropError, context_box, crop
from qprobe.io import ImageSource, load_rgb
from qprobe.types import Box, Step, Trajectory


@dataclass(frozen=True)
class EnvConfig:
    """Settings of a probing episode."""

    view_long_side: int = field(
        default=672, metadata={"help": "Long side of the global view in pixels (448-896 typical)."}
    )
    max_zooms: int = field(default=4, metadata={"help": "Zoom budget per image."})
    max_errors: int = field(
        default=2, metadata={"help": "Error turns tolerated before the episode stops without a score."}
    )
    crop: CropConfig = field(default_factory=CropConfig, metadata={"help": "Context-aware cropping."})

    def __post_init__(self) -> None:
        if self.view_long_side < 28:
            raise ValueError(f"view_long_side must be >= 28, got {self.view_long_side}")
        if self.max_zooms < 0 or self.max_errors < 0:
            raise ValueError("max_zooms and max_errors must be >= 0")

    @property
    def max_turns(self) -> int:
        """Policy turns allowed: every zoom, the answer and the tolerated errors."""
        return self.max_zooms + 1 + self.max_errors

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "EnvConfig":
        data = dict(data)
        crop_cfg = data.pop("crop", None)
        return cls(crop=CropConfig(**crop_cfg) if isinstance(crop_cfg, dict) else CropConfig(), **data)  # type: ignore[arg-type]


@dataclass
class Observation:
    """What the policy sees after a reset or a step.

    ``kind`` is ``"global"`` (the downscaled whole image), ``"crop"`` (a
    full-resolution crop of ``box``) or ``"error"`` (no image; ``message``
    says what was wrong). ``image`` is ``None`` for an error. ``scale`` is
    view pixels per original pixel (< 1 for a downscaled global view, 1 for
    a crop), so ``box_in_original = box_in_view / scale`` for the global view.
    """

    kind: str
    image: np.ndarray | None
    box: Box | None
    turn: int
    zooms_left: int
    message: str = ""
    scale: float = 1.0


@dataclass
class Turn:
    """One observation and the action the policy took after it (``None`` if not yet)."""

    observation: Observation
    action: Action | None = None


def fingerprint(pixels: np.ndarray) -> str:
    """A short content hash of a pixel array (shape and bytes)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def global_view(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` to ``long_side`` (never upscale); returns (view, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    vw, vh = max(1, round(w * scale)), max(1, round(h * scale))
    pil = Image.fromarray(image)
    view = pil.resize((vw, vh), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(view), vw / w


class ProbeEnv:
    """Global view + context-aware full-resolution zooms, recorded as a trajectory."""

    def __init__(self, config: EnvConfig | None = None, backend: str = "") -> None:
        self.config = config or EnvConfig()
        self.backend = backend
        self._image: np.ndarray | None = None
        self._traj: Trajectory | None = None
        self._history: list[Turn] = []
        self._zooms_left = 0
        self._errors = 0
        self._turn = 0
        self._done = True
        self._max_turns = 0
        self._answer: Answer | None = None
        self.view_scale = 1.0

    # -- state ------------------------------------------------------------
    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            raise RuntimeError("call reset(image) first")
        return self._image

    @property
    def trajectory(self) -> Trajectory:
        if self._traj is None:
            raise RuntimeError("call reset(image) first")
        return self._traj

    @property
    def history(self) -> Sequence[Turn]:
        return self._history

    @property
    def answer(self) -> Answer | None:
        return self._answer

    @property
    def done(self) -> bool:
        return self._done

    @property
    def zooms_left(self) -> int:
        return self._zooms_left

    # -- episode ------------------------------------------------------------
    def reset(
        self,
        image: ImageSource,
        *,
        path: str | None = None,
        seed: int | None = None,
        extra_zooms: int = 0,
    ) -> Observation:
        """Start an episode on ``image`` and return the global view.

        ``extra_zooms`` raises this episode's budget (used for forced probes).
        """
        arr = load_rgb(image)
        if path is None and isinstance(image, (str, os.PathLike)):
            path = str(image)
        self._image = arr
        h, w = arr.shape[:2]
        view, scale = global_view(arr, self.config.view_long_side)
        self.view_scale = scale
        self._zooms_left = self.config.max_zooms + max(0, int(extra_zooms))
        self._max_turns = self.config.max_turns + max(0, int(extra_zooms))
        self._errors = 0
        self._turn = 0
        self._done = False
        self._answer = None
        self._traj = Trajectory(
            image=path or "",
            image_size=(w, h),
            backend=self.backend,
            seed=seed,
            meta={"env": self.config.to_dict(), "view_scale": scale, "zoom_budget": self._zooms_left},
        )
        self._traj.steps.append(
            Step(
                kind="observe",
                view_size=(view.shape[1], view.shape[0]),
                data={"view": "global", "fingerprint": fingerprint(view)},
            )
        )
        obs = Observation("global", view, None, 0, self._zooms_left, scale=scale)
        self._history = [Turn(obs)]
        return obs

    def step(self, action: Action, *, forced: bool = False) -> tuple[Observation, bool]:
        """Apply ``action``; returns the next observation and whether the episode ended."""
        if self._done or self._traj is None:
            raise RuntimeError("the episode is over: call reset(image) first")
        self._history[-1].action = action
        self._turn += 1
        if isinstance(action, Zoom):
            obs = self._zoom(action, forced)
        elif isinstance(action, Answer):
            obs = self._finish(action)
        elif isinstance(action, Invalid):
            obs = self._error(action.message, action.raw)
        else:
            obs = self._error(f"unknown action type {type(action).__name__}", repr(action))
        if self._turn >= self._max_turns:
            self._done = True
        self._history.append(Turn(obs))
        return obs, self._done

    # -- action handlers ------------------------------------------------------
    def _zoom(self, action: Zoom, forced: bool) -> Observation:
        traj = self.trajectory
        data: dict[str, object] = {"forced": True} if forced else {}
        traj.steps.append(Step(kind="zoom", box=action.box, text=action.raw or action.thought, data=data))
        if self._zooms_left <= 0:
            return self._error("zoom budget is spent: answer now", action.raw)
        try:
            eff = context_box(action.box, traj.image_size, self.config.crop, self.view_scale)
        except CropError as exc:
            return self._error(str(exc), action.raw)
        self._zooms_left -= 1
        pixels = crop(self.image, eff)
        traj.steps.append(
            Step(
                kind="observe",
                box=eff,
                view_size=(pixels.shape[1], pixels.shape[0]),
                data={"view": "crop", "requested": action.box.to_list(None), "fingerprint": fingerprint(pixels)},
            )
        )
        return Observation("crop", pixels, eff, self._turn, self._zooms_left)

    def _finish(self, action: Answer) -> Observation:
        problem = check_answer(action)
        if problem is not None:
            return self._error(f"invalid answer: {problem}", action.raw)
        self.trajectory.steps.append(
            Step(
                kind="answer",
                text=action.raw or action.thought,
                data={
                    "score": float(action.score),
                    "defects": [d.to_dict() for d in action.defects],
                    "reasons": list(action.reasons),
                },
            )
        )
        self._answer = action
        self._done = True
        return Observation("answer", None, None, self._turn, self._zooms_left, message="answered")

    def _error(self, message: str, raw: str = "") -> Observation:
        self._errors += 1
        self.trajectory.steps.append(Step(kind="error", text=message, data={"raw": raw} if raw else {}))
        if self._errors > self.config.max_errors:
            self._done = True
        return Observation("error", None, None, self._turn, self._zooms_left, message=message)


def describe_history(history: Sequence[Turn]) -> list[str]:
    """Readable lines of an episode's turns (for debugging and reports)."""
    lines = []
    for turn in history:
        obs = turn.observation
        where = "" if obs.box is None else " " + str(obs.box.to_list(0))
        lines.append(f"[{obs.turn}] {obs.kind}{where} {obs.message}".rstrip())
        if turn.action is not None:
            lines.append(f"    -> {describe(turn.action)}")
    return lines
