"""Decoupled group advantages (Stage 3, DESIGN §2.4).

GRPO's default sums the weighted rewards, then normalises the sum within each
group of ``G`` completions of one prompt. With R_acc in {0, 1} and R_loc a
small IoU, the sum's variance is all accuracy: localization is drowned.
*Decoupled* advantages normalise each reward within the group separately,
then weight and sum, so each reward moves the policy on its own scale.

TRL implements exactly this as ``GRPOConfig(multi_objective_aggregation=
"normalize_then_sum")`` (GDPO); Stage 3 uses that documented option rather
than overriding trainer internals. :func:`decoupled_advantages` is the same
computation in NumPy: the specification the Stage-3 test checks the trainer's
advantages against, and what the docs' worked examples use.

TRL's final step is one batch-wide standardisation of the summed
advantages (``batch_scale=True``); it is a common affine map, so the relative
weight of the rewards is unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np

TRL_EPS = 1e-4
"""The epsilon TRL adds to standard deviations."""


def _nanstd(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Bessel-corrected standard deviation ignoring NaN (NaN where < 2 values), like TRL's ``nanstd``."""
    count = np.sum(~np.isnan(x), axis=axis, keepdims=keepdims)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN is the answer
        mean = np.nanmean(x, axis=axis, keepdims=True)
        var = np.nansum((x - mean) ** 2, axis=axis, keepdims=keepdims) / (count - 1)
    return np.where(count > 1, np.sqrt(var), np.nan)


def decoupled_advantages(
    rewards: np.ndarray,
    num_generations: int,
    weights: np.ndarray | list[float] | None = None,
    *,
    batch_scale: bool = True,
    eps: float = TRL_EPS,
) -> np.ndarray:
    """Advantages of ``N`` completions from their ``N x K`` reward matrix.

    ``rewards[n, k]`` is reward ``k`` of completion ``n`` (``NaN`` = not
    applicable); completions ``g*G .. g*G+G-1`` are the ``G`` samples of one
    prompt. Each column is standardised within each group (Bessel std, as
    TRL), weighted, summed; then, with ``batch_scale``, the sums are
    standardised over the batch. Completions with every reward ``NaN`` get 0.

    Two samples, R_acc 1 vs 0 and R_loc 0.2 vs 0.1: both rewards count the same::

        >>> a = decoupled_advantages(np.array([[1.0, 0.2], [0.0, 0.1]]), 2, batch_scale=False)
        >>> [round(float(v), 2) for v in a]
        [1.41, -1.41]
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be N x K, got shape {r.shape}")
    n, k = r.shape
    if num_generations < 1 or n % num_generations:
        raise ValueError(f"{n} completions do not split into groups of {num_generations}")
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise ValueError(f"{k} rewards but {w.shape[0] if w.ndim else 0} weights")
    grouped = r.reshape(-1, num_generations, k)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(grouped, axis=1, keepdims=True)
    std = _nanstd(grouped, axis=1, keepdims=True) if num_generations > 1 else np.zeros_like(mean)
    normed = ((grouped - mean) / (std + eps)).reshape(n, k)
    summed = np.nansum(normed * w[None, :], axis=1)
    unscorable = np.isnan(r).all(axis=1)
    summed[unscorable] = np.nan
    if batch_scale:
        sd = _nanstd(summed) if n > 1 else np.float64(0.0)
        with np.errstate(invalid="ignore"):
            summed = (summed - np.nanmean(summed)) / (sd + eps)
    return np.nan_to_num(summed, nan=0.0)


def summed_advantages(
    rewards: np.ndarray, num_generations: int, weights: np.ndarray | list[float] | None = None, *, eps: float = TRL_EPS
) -> np.ndarray:
    """GRPO's default (``sum_then_normalize``): weight, sum, then normalise within each group.

    The baseline :func:`decoupled_advantages` is compared with::

        >>> a = summed_advantages(np.array([[1.0, 0.2], [0.0, 0.1]]), 2)
        >>> [round(float(v), 3) for v in a]
        [0.707, -0.707]
    """
    r = np.asarray(rewards, dtype=np.float64)
    n, k = r.shape
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    total = np.nansum(r * w[None, :], axis=1).reshape(-1, num_generations)
    std = _nanstd(total, axis=1, keepdims=True) if num_generations > 1 else np.zeros((total.shape[0], 1))
    return ((total - total.mean(axis=1, keepdims=True)) / (std + eps)).reshape(n)
