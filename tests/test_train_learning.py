"""Slow tier: does Stage 1 teach a tiny model the toy task (score = brightness level)?

Same recipe as ``benchmarks/learn_toy.py``: a format warm-up on random
scores, then rank-GRPO; the held-out SRCC and the mean ranking reward must
rise measurably.

Known failure (measured 2026-11-27, seed 0, 150 GRPO steps, 6.6 CPU min):
the format is learned (parse rate 0.99) but the policy collapses to one
score per image group (the Thurstone fidelity reward of a tie, 0.708, beats
that of uninformed random scores, 0.667), and the held-out SRCC does not
rise (0.080 -> 0.059). Kept as a real check, marked xfail until a recipe
that learns is found; it turns into a pass (XPASS) when one does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")


@pytest.mark.slow
@pytest.mark.xfail(reason="Stage 1 collapses to ties on the toy task instead of learning it (see docstring)",
                   strict=False)
def test_stage1_learns_the_toy_task(tmp_path: Path) -> None:
    import torch

    from qprobe.train.toy import learn_toy

    torch.set_num_threads(1)
    r = learn_toy(tmp_path)
    assert r.before["parse_rate"] > 0.9, "the warm-up did not teach the answer format"
    assert r.after["parse_rate"] > 0.9
    assert r.reward_last > r.reward_first + 0.05
    assert r.after["srcc"] > r.before["srcc"] + 0.2
    assert r.after["srcc"] > 0.3
