"""Score-accuracy reward R_acc for Stage 3 (Q-Insight's threshold reward).

``hard``: 1 if ``|score − MOS| < tau`` else 0 (tau = 0.35 on the 1–5 scale).
``smooth``: ``exp(−(score − MOS)² / (2·tau²))`` — the same centre and width,
but a gradient signal for near misses. A completion without a valid answer
gets 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qprobe.train.rewards import REWARDS
from qprobe.train.rewards._completion import final_score

MODES = ("hard", "smooth")


def accuracy(score: float | None, mos: float, *, tau: float = 0.35, mode: str = "hard") -> float:
    """R_acc of one predicted score.

    >>> accuracy(3.2, 3.5), accuracy(3.0, 3.5), accuracy(None, 3.5)
    (1.0, 0.0, 0.0)
    >>> round(accuracy(3.15, 3.5, mode="smooth"), 4)
    0.6065
    """
    if mode not in MODES:
        raise ValueError(f"unknown accuracy mode {mode!r}; choose one of {MODES}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if score is None:
        return 0.0
    d = abs(float(score) - float(mos))
    if mode == "hard":
        return 1.0 if d < tau else 0.0
    return math.exp(-(d * d) / (2.0 * tau * tau))


@REWARDS.register(
    "acc",
    stage=3,
    options=("tau", "mode"),
    help="R_acc: 1 if |score - MOS| < tau (or a Gaussian of the error); 0 without a valid answer.",
)
def acc_reward(
    completions: Sequence[Any],
    *,
    mos: Sequence[float | None],
    tau: float = 0.35,
    mode: str = "hard",
    **_: Any,
) -> list[float | None]:
    """TRL reward; rows without a MOS get ``None`` (not applicable).

    >>> acc_reward(['<answer>{"score": 3.2}</answer>', 'garbage', '<answer>{"score": 2}</answer>'],
    ...            mos=[3.5, 3.5, None])
    [1.0, 0.0, None]
    """
    return [
        None if m is None else accuracy(final_score(c), m, tau=tau, mode=mode)
        for c, m in zip(completions, mos, strict=True)
    ]
