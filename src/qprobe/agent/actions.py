"""The action grammar of a probing episode: zoom into a box, or answer.

A policy returns one of three actions per turn:

* :class:`Zoom` — look at ``box`` (original-image pixels) at full resolution;
* :class:`Answer` — the final score (1–5, higher is better), defects, reasons;
* :class:`Invalid` — what the policy produced could not be turned into an
  action (an LLM's unparsable text, a box outside the image, ...). The
  environment records it as an error turn and the episode goes on.

``raw`` keeps the text a model produced for the action (empty for non-LLM
policies), so a trajectory can be turned back into chat messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from qprobe.types import SCORE_MAX, SCORE_MIN, Box, Defect


@dataclass(frozen=True)
class Zoom:
    """Ask to see ``box`` (original pixels) at full resolution."""

    box: Box
    raw: str = ""
    thought: str = ""


@dataclass(frozen=True)
class Answer:
    """Finish the episode with a score, the defects found and short reasons."""

    score: float
    defects: tuple[Defect, ...] = ()
    reasons: tuple[str, ...] = ()
    raw: str = ""
    thought: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Backend-specific details copied to ``Assessment.extra`` (e.g. classic's sub-scores)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "defects", tuple(self.defects))
        object.__setattr__(self, "reasons", tuple(self.reasons))


@dataclass(frozen=True)
class Invalid:
    """Output that is not a valid action; becomes an error turn."""

    message: str
    raw: str = ""
    thought: str = ""


Action = Union[Zoom, Answer, Invalid]


def check_answer(answer: Answer) -> str | None:
    """Why ``answer`` is not acceptable, or ``None`` when it is.

    A score must be finite and inside the 1–5 scale: an out-of-range score
    is a malformed output, never silently clamped into a number.

    >>> check_answer(Answer(3.5)) is None
    True
    >>> check_answer(Answer(7.0))
    'score 7.0 is outside the 1-5 scale'
    """
    score = answer.score
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        return f"score {score!r} is not a finite number"
    if not SCORE_MIN <= float(score) <= SCORE_MAX:
        return f"score {score!r} is outside the {SCORE_MIN:g}-{SCORE_MAX:g} scale"
    return None


def describe(action: Action) -> str:
    """A one-line human description of an action (for logs and trajectories)."""
    if isinstance(action, Zoom):
        return "zoom " + str(action.box.to_list(1))
    if isinstance(action, Answer):
        return f"answer {action.score:.3f} with {len(action.defects)} defect(s)"
    return f"invalid: {action.message}"
