"""Rewards and advantages against hand-computed values (DESIGN §2.4)."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest

from qprobe.errors import UnknownNameError
from qprobe.train.advantages import decoupled_advantages, summed_advantages
from qprobe.train.rewards import create_reward, list_rewards
from qprobe.train.rewards.acc import acc_reward, accuracy
from qprobe.train.rewards.fmt import fmt_reward
from qprobe.train.rewards.loc import loc_reward, match_iou
from qprobe.train.rewards.rank import rank_reward, thurstone_rewards
from qprobe.types import Box

EPS = 1e-6
ROOT_EPS = math.sqrt(EPS)  # sqrt(0 + eps): the floor of a fidelity term


def ans(score: float, boxes: list[list[float]] | None = None) -> str:
    defects = ", ".join(f'{{"bbox_2d": {b}, "type": "noise"}}' for b in boxes or [])
    return f'<think>ok</think><answer>{{"score": {score}, "defects": [{defects}]}}</answer>'


@pytest.mark.parametrize(
    "module",
    ["qprobe.train.rewards", "qprobe.train.rewards.rank", "qprobe.train.rewards.acc",
     "qprobe.train.rewards.loc", "qprobe.train.rewards.fmt", "qprobe.train.advantages"],
)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_registry_lists_and_binds_options() -> None:
    assert list_rewards() == ["acc", "fmt", "loc", "rank"]
    assert list_rewards("r*") == ["rank"]
    fn = create_reward("acc", tau=1.0)
    assert fn.__name__ == "acc_reward"  # TRL logs rewards/<name>/mean
    assert fn([ans(3.0)], mos=[3.9]) == [1.0]
    with pytest.raises(TypeError, match="no option"):
        create_reward("acc", tua=1.0)
    with pytest.raises(UnknownNameError, match="did you mean"):
        create_reward("rnak")


# -- Thurstone ranking ---------------------------------------------------------


def test_thurstone_one_sample_per_image_with_ties() -> None:
    # a and b tie in MOS and in predicted score; c is worse and predicted worse.
    r = thurstone_rewards([3.0, 3.0, 2.0], ["a", "b", "c"], [0, 0, 0], ["d"] * 3, [4.0, 4.0, 2.0])
    tie = 2 * math.sqrt(0.25 + EPS)  # p = Φ(0) = 0.5, g = 0.5
    right = math.sqrt(1 + EPS) + ROOT_EPS  # p = 1, g = 1 (σ² = 0: a step function)
    assert r[0] == pytest.approx((tie + right) / 2, abs=1e-9)
    assert r[1] == pytest.approx((tie + right) / 2, abs=1e-9)
    assert r[2] == pytest.approx(right, abs=1e-9)  # p = 0, g = 0 against both


def test_thurstone_wrong_order_scores_near_zero() -> None:
    r = thurstone_rewards([2.0, 4.0], ["a", "b"], [0, 0], ["d", "d"], [4.0, 2.0])
    assert r == pytest.approx([2 * ROOT_EPS, 2 * ROOT_EPS])


def test_thurstone_uses_sample_mean_and_variance() -> None:
    # image a: samples 3 and 5 (μ 4, σ² 1); image b: one sample 2 (μ 2, σ² 0); MOS a > b.
    r = thurstone_rewards([3.0, 5.0, 2.0], ["a", "a", "b"], [0] * 3, ["d"] * 3, [4.0, 4.0, 2.0])
    p3 = 0.5 * (1 + math.erf((3 - 2) / math.sqrt(1 + EPS) / math.sqrt(2)))  # Φ(1) = 0.8413
    assert p3 == pytest.approx(0.841345, abs=1e-6)
    assert r[0] == pytest.approx(math.sqrt(p3 + EPS) + math.sqrt(EPS), abs=1e-9)
    p_b = 0.5 * (1 + math.erf((2 - 4) / math.sqrt(1 + EPS) / math.sqrt(2)))  # b vs a: Φ(-2)
    assert r[2] == pytest.approx(math.sqrt(EPS) + math.sqrt(1 - p_b + EPS), abs=1e-9)


def test_thurstone_probabilistic_target_from_mos_and_std() -> None:
    # g = Φ((3 - 2) / sqrt(0.5² + 0.5²)) = Φ(1.41421) = 0.92135; predicted in order: p = 1.
    r = thurstone_rewards([3.0, 2.0], ["a", "b"], [0, 0], ["d", "d"], [3.0, 2.0], [0.5, 0.5], target="prob")
    g = 0.921350
    assert r[0] == pytest.approx(math.sqrt(g + EPS) + math.sqrt(EPS), abs=1e-6)
    assert r[1] == pytest.approx(math.sqrt(EPS) + math.sqrt(g + EPS), abs=1e-6)
    with pytest.raises(ValueError, match="mos_std"):
        thurstone_rewards([3.0, 2.0], ["a", "b"], [0, 0], ["d", "d"], [3.0, 2.0], [0.5, None], target="prob")


def test_thurstone_groups_are_explicit_and_never_cross_datasets() -> None:
    # Group 0 holds a, b; group 1 holds c, d; e shares group 0's id but not its dataset.
    scores = [4.0, 1.0, 2.0, 3.0, 5.0]
    ids = ["a", "b", "c", "d", "e"]
    groups = [0, 0, 1, 1, 0]
    datasets = ["x", "x", "x", "x", "y"]
    mos = [5.0, 1.0, 1.0, 5.0, 1.0]
    r = thurstone_rewards(scores, ids, groups, datasets, mos)
    good = math.sqrt(1 + EPS) + ROOT_EPS
    assert r[:4] == pytest.approx([good] * 4)
    assert r[4] is None  # no partner in its own dataset
    # Order in the batch does not matter: the same rows shuffled give the same rewards.
    perm = [3, 0, 4, 2, 1]
    r2 = thurstone_rewards(*[[col[i] for i in perm] for col in (scores, ids, groups, datasets, mos)])
    assert [r2[perm.index(i)] for i in range(5)] == r


def test_rank_reward_parse_failure_is_zero_and_excluded_from_stats() -> None:
    comps = [ans(4.0), "I think it is good", ans(2.0), "<answer>{\"score\": 9}</answer>"]
    r = rank_reward(comps, image_id=["a", "a", "b", "b"], group=[1] * 4, dataset=["d"] * 4,
                    mos=[4.0, 4.0, 2.0, 2.0])
    good = math.sqrt(1 + EPS) + ROOT_EPS  # σ² stays 0: the failures do not count as samples
    assert r == pytest.approx([good, 0.0, good, 0.0])


# -- accuracy, localization, format --------------------------------------------------


def test_accuracy_hard_and_smooth() -> None:
    assert accuracy(3.64, 3.3) == 1.0 and accuracy(3.66, 3.3) == 0.0
    assert accuracy(3.3 + 0.35, 3.3, mode="smooth") == pytest.approx(math.exp(-0.5))
    assert acc_reward([ans(2.0), "nothing"], mos=[2.2, 2.2]) == [1.0, 0.0]


def test_iou_matching_with_several_boxes() -> None:
    a, b = Box(0, 0, 10, 10), Box(20, 20, 30, 30)
    half_a, exact_b = Box(0, 0, 10, 5), Box(20, 20, 30, 30)  # IoU 0.5 with a, 1.0 with b
    assert match_iou([half_a, exact_b], [a, b]) == pytest.approx((0.5 + 1.0) / 2)
    assert match_iou([exact_b, half_a], [a, b]) == pytest.approx(0.75)  # order does not matter
    assert match_iou([half_a, exact_b, Box(50, 50, 60, 60)], [a, b]) == pytest.approx(1.5 / 3)
    big = Box(0, 0, 30, 30)  # one box over both: IoU 100/900 with each, matched once
    assert match_iou([big], [a, b]) == pytest.approx((100 / 900) / 2)
    # one-to-one: two copies of the same good box cannot both claim it
    assert match_iou([exact_b, exact_b], [b]) == pytest.approx(0.5)


def test_loc_reward_converts_model_boxes_and_rewards_empty_on_clean() -> None:
    cols = {"width": [200] * 4, "height": [100] * 4, "view_width": [100] * 4, "view_height": [50] * 4}
    comps = [
        ans(2.0, [[0, 0, 10, 10]]),  # model frame = half size -> [0, 0, 20, 20] original
        ans(4.5, []),  # clean image, no defect: correct
        ans(4.5, [[0, 0, 10, 10]]),  # clean image, a false positive
        "parse me if you can",
    ]
    gt = [[[0, 0, 20, 20]], [], [], [[0, 0, 20, 20]]]
    assert loc_reward(comps, gt_boxes=gt, **cols) == [1.0, 1.0, 0.0, 0.0]
    rel = {**cols, "box_convention": ["relative1000"] * 4}
    assert loc_reward([ans(2.0, [[0, 0, 100, 200]])], gt_boxes=[[[0, 0, 20, 20]]],
                      **{k: v[:1] for k, v in rel.items()}) == [1.0]


def test_format_reward_over_multi_turn_messages() -> None:
    call = {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 30, 40]}}}
    tool = {"role": "tool", "name": "zoom_in", "content": [{"type": "text", "text": "crop"}]}
    good = [{"role": "assistant", "content": "", "tool_calls": [call]}, tool,
            {"role": "assistant", "content": ans(3.0)}]
    no_answer = good[:2]
    bad_middle = [{"role": "assistant", "content": "zoom please"}, tool, {"role": "assistant", "content": ans(3.0)}]
    bad_tool = [{"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "rotate", "arguments": {}}}]}, tool,
        {"role": "assistant", "content": ans(3.0)}]
    assert fmt_reward([good, no_answer, bad_middle, bad_tool, ans(6.0)]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert acc_reward([good], mos=[3.2]) == [1.0]


# -- decoupled advantages ------------------------------------------------------------


def _pair_norm(d: float) -> float:
    """Normalised advantage of the better of two samples differing by d (Bessel std, TRL's 1e-4)."""
    return (d / 2) / (abs(d) / math.sqrt(2) + 1e-4)


def test_decoupled_advantages_hand_computed() -> None:
    # One group of 2: accuracy favours sample 0 by 1.0, localization favours sample 1 by 0.2.
    r = np.array([[1.0, 0.1], [0.0, 0.3]])
    dec = decoupled_advantages(r, 2, batch_scale=False)
    expect0 = _pair_norm(1.0) - _pair_norm(0.2)  # 0.70701 - 0.70661: the two cancel
    assert dec == pytest.approx([expect0, -expect0], abs=1e-9)
    assert abs(dec[0]) < 1e-3
    # Summing first lets accuracy drown localization: sample 0 wins outright.
    summed = summed_advantages(r, 2)
    assert summed == pytest.approx([_pair_norm(0.8), -_pair_norm(0.8)], abs=1e-9)
    # Weights act after the per-reward normalisation.
    w = decoupled_advantages(r, 2, weights=[1.0, 2.0], batch_scale=False)
    assert w[1] == pytest.approx(_pair_norm(1.0) * -1 + 2 * _pair_norm(0.2), abs=1e-9)


def test_decoupled_advantages_constant_and_missing_rewards() -> None:
    # Group 0: accuracy constant (no signal), loc differs; group 1: loc not applicable (NaN).
    r = np.array([[1.0, 0.5], [1.0, 0.2], [0.0, np.nan], [1.0, np.nan]])
    dec = decoupled_advantages(r, 2, batch_scale=False)
    assert dec == pytest.approx([_pair_norm(0.3), -_pair_norm(0.3), -_pair_norm(1.0), _pair_norm(1.0)], abs=1e-9)
    all_nan = decoupled_advantages(np.array([[np.nan, np.nan], [1.0, 0.0]]), 2)
    assert all_nan[0] == 0.0
    scaled = decoupled_advantages(r, 2)
    assert np.mean(scaled) == pytest.approx(0.0, abs=1e-9)
    assert np.std(scaled, ddof=1) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="groups of 3"):
        decoupled_advantages(r, 3)
