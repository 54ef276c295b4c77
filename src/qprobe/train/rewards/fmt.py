"""Format reward R_format: the whole trajectory parses.

1 when every assistant turn is a valid action (a ``zoom_in`` call with a box,
or an answer) and the last turn is a valid answer (score inside 1–5), else 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qprobe.train.rewards import REWARDS
from qprobe.train.rewards._completion import is_well_formed


@REWARDS.register(
    "fmt",
    stage=3,
    options=(),
    help="R_format: 1 if every turn parses and the trajectory ends with a valid answer, else 0.",
)
def fmt_reward(completions: Sequence[Any], **_: Any) -> list[float | None]:
    """TRL reward.

    >>> fmt_reward(['<answer>{"score": 3.0}</answer>', '<answer>{"score": 9}</answer>', 'hello'])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if is_well_formed(c) else 0.0 for c in completions]
