"""Thurstone ranking reward for Stage 1 (perception alignment).

For sample ``k`` of image ``i`` with predicted score ``q_ik`` and another
image ``j`` of the same group (same ``group`` id **and** same ``dataset``)::

    p_ij  = Φ((q_ik − μ_j) / sqrt(σ_i² + σ_j² + var_eps))
    g_ij  = 1 / 0 / 0.5 by MOS order                       (target="order", VisualQuality-R1)
          = Φ((MOS_i − MOS_j) / sqrt(std_i² + std_j²))     (target="prob", DeQA-Score)
    r_ik  = mean_j [ sqrt(p_ij·g_ij + eps) + sqrt((1 − p_ij)(1 − g_ij) + eps) ]

``μ_j`` / ``σ_j²`` are the mean / population variance of image ``j``'s parsed
sampled scores. Samples of one image are the completions sharing its
``image_id``; groups are explicit (the ``group`` column), never inferred from
the order of the batch. A completion that does not parse gets 0 and does not
enter ``μ``/``σ²``. An image with no comparable partner (alone in its group,
or every partner unparsed) gets ``None`` for its parsed samples: TRL then
leaves them out of this reward instead of rewarding a comparison that did
not happen.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from qprobe.train.rewards import REWARDS
from qprobe.train.rewards._completion import final_score

TARGETS = ("order", "prob")


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _target(mos_i: float, mos_j: float, std_i: float | None, std_j: float | None, target: str) -> float:
    if target == "order" or (std_i is not None and std_j is not None and std_i == 0 and std_j == 0):
        return 1.0 if mos_i > mos_j else 0.0 if mos_i < mos_j else 0.5
    if std_i is None or std_j is None:
        raise ValueError(
            "target='prob' needs a mos_std for every image (the DeQA-Score target); "
            "fill mos_std in the manifest or use target='order'"
        )
    return _phi((mos_i - mos_j) / math.sqrt(std_i**2 + std_j**2))


def thurstone_rewards(
    scores: Sequence[float | None],
    image_id: Sequence[Any],
    group: Sequence[Any],
    dataset: Sequence[Any],
    mos: Sequence[float],
    mos_std: Sequence[float | None] | None = None,
    *,
    target: str = "order",
    eps: float = 1e-6,
    var_eps: float = 1e-6,
) -> list[float | None]:
    """Thurstone fidelity reward of every sample (see the module docstring).

    Two images, one sample each, predicted in the right order::

        >>> r = thurstone_rewards([4.0, 2.0], ["a", "b"], [0, 0], ["d", "d"], [4.5, 1.5])
        >>> [round(x, 3) for x in r]
        [1.001, 1.001]

    An unparsed sample gets 0; its partner has nothing to compare with::

        >>> thurstone_rewards([None, 2.0], ["a", "b"], [0, 0], ["d", "d"], [4.5, 1.5])
        [0.0, None]
    """
    if target not in TARGETS:
        raise ValueError(f"unknown Thurstone target {target!r}; choose one of {TARGETS}")
    n = len(scores)
    for name, col in (("image_id", image_id), ("group", group), ("dataset", dataset), ("mos", mos)):
        if len(col) != n:
            raise ValueError(f"column {name!r} has {len(col)} values for {n} completions")
    stds: Sequence[float | None] = mos_std if mos_std is not None else [None] * n

    # Per image: its key (dataset, group, image), MOS/std, and parsed scores.
    samples: dict[tuple[Any, Any, Any], list[float]] = defaultdict(list)
    label: dict[tuple[Any, Any, Any], tuple[float, float | None]] = {}
    keys = []
    for k in range(n):
        key = (dataset[k], group[k], image_id[k])
        keys.append(key)
        label.setdefault(key, (float(mos[k]), None if stds[k] is None else float(stds[k])))
        if scores[k] is not None:
            samples[key].append(float(scores[k]))  # type: ignore[arg-type]
    stats: dict[tuple[Any, Any, Any], tuple[float, float]] = {}
    for key, vals in samples.items():
        mu = sum(vals) / len(vals)
        stats[key] = (mu, sum((v - mu) ** 2 for v in vals) / len(vals))
    members: dict[tuple[Any, Any], list[tuple[Any, Any, Any]]] = defaultdict(list)
    for key in stats:
        members[key[:2]].append(key)

    out: list[float | None] = []
    for k in range(n):
        q = scores[k]
        if q is None:
            out.append(0.0)
            continue
        key = keys[k]
        _, var_i = stats[key]
        mos_i, std_i = label[key]
        terms = []
        for other in members[key[:2]]:
            if other[2] == key[2]:
                continue
            mu_j, var_j = stats[other]
            mos_j, std_j = label[other]
            p = _phi((float(q) - mu_j) / math.sqrt(var_i + var_j + var_eps))
            g = _target(mos_i, mos_j, std_i, std_j, target)
            terms.append(math.sqrt(p * g + eps) + math.sqrt((1.0 - p) * (1.0 - g) + eps))
        out.append(sum(terms) / len(terms) if terms else None)
    return out


@REWARDS.register(
    "rank",
    stage=1,
    options=("target", "eps", "var_eps"),
    help="Thurstone ranking reward over images of one group and dataset (order or probabilistic target).",
)
def rank_reward(
    completions: Sequence[Any],
    *,
    image_id: Sequence[Any],
    group: Sequence[Any],
    dataset: Sequence[Any],
    mos: Sequence[float],
    mos_std: Sequence[float | None] | None = None,
    target: str = "order",
    eps: float = 1e-6,
    var_eps: float = 1e-6,
    **_: Any,
) -> list[float | None]:
    """TRL reward: parse each completion's score, then :func:`thurstone_rewards`.

    >>> r = rank_reward(['<answer>{"score": 4}</answer>', 'no answer', '<answer>{"score": 2}</answer>'],
    ...                 image_id=["a", "a", "b"], group=[7, 7, 7], dataset=["d"] * 3, mos=[4.5, 4.5, 1.5])
    >>> [round(x, 3) for x in r]
    [1.001, 0.0, 1.001]
    """
    scores = [final_score(c) for c in completions]
    out = thurstone_rewards(
        scores, image_id, group, dataset, mos, mos_std, target=target, eps=eps, var_eps=var_eps
    )
    return out
