"""Reward functions for GRPO, one module per reward, TRL's reward contract.

A reward is a plain function ``(completions, **columns) -> list[float | None]``:
TRL passes every dataset column (``mos``, ``group``, ``gt_boxes`` ...) as a
keyword argument holding one value per completion. ``None`` means "not
applicable to this sample" (TRL then leaves the sample out of that reward);
a completion that does not parse gets ``0.0``, never a random score.

Rewards register with :data:`REWARDS`; :func:`create_reward` binds a reward's
options (``create_reward("rank", target="prob")``) and returns a callable
that TRL can use directly::

    >>> list_rewards()
    ['acc', 'fmt', 'loc', 'rank']
    >>> fn = create_reward("acc", tau=0.5)
    >>> fn(['<answer>{"score": 3.2}</answer>'], mos=[3.5])
    [1.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from qprobe.registry import Registry

RewardFn = Callable[..., list[float | None]]

REWARDS: Registry[RewardFn] = Registry(
    "reward",
    lazy_modules=(
        "qprobe.train.rewards.rank",
        "qprobe.train.rewards.acc",
        "qprobe.train.rewards.loc",
        "qprobe.train.rewards.fmt",
    ),
)


def list_rewards(pattern: str = "*") -> list[str]:
    """Names of the registered rewards matching a glob ``pattern``."""
    return REWARDS.list(pattern)


def create_reward(name: str, **options: Any) -> RewardFn:
    """The reward ``name`` with ``options`` bound, ready for ``GRPOTrainer(reward_funcs=...)``.

    The returned callable keeps the reward's name (TRL logs ``rewards/<name>/mean``).
    Unknown options fail here, not in the middle of a training step.
    """
    fn = REWARDS.get(name)
    allowed = set(REWARDS.metadata(name).get("options", ()))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"reward {name!r} has no option(s) {unknown}; valid options: {sorted(allowed)}")
    if not options:
        return fn
    bound = functools.partial(fn, **options)
    functools.update_wrapper(bound, fn)
    return bound  # type: ignore[return-value]


__all__ = ["REWARDS", "RewardFn", "create_reward", "list_rewards"]
