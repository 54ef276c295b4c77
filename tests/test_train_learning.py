"""Slow tier: Stage 1 teaches a tiny model the toy task (score = brightness level).

Same recipe as ``benchmarks/learn_toy.py``: a format warm-up on random
scores, then rank-GRPO; the held-out SRCC and the mean ranking reward must
rise measurably.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")


@pytest.mark.slow
def test_stage1_learns_the_toy_task(tmp_path: Path) -> None:
    from qprobe.train.toy import learn_toy

    r = learn_toy(tmp_path)
    assert r.before["parse_rate"] > 0.8, "the warm-up did not teach the answer format"
    assert r.after["parse_rate"] > 0.8
    assert r.reward_last > r.reward_first + 0.05
    assert r.after["srcc"] > r.before["srcc"] + 0.2
    assert r.after["srcc"] > 0.3
