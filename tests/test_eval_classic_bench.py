"""``benchmarks/eval_classic_bench.py``: the rule that tells false boxes on mosaic seams apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qprobe.types import Box

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ecb():
    spec = importlib.util.spec_from_file_location("eval_classic_bench", BENCHMARKS / "eval_classic_bench.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(7671, 2136, 7686, 2484), True),  # a thin box on the seam x = 3 * 2560
        (Box(2528, 4256, 2648, 5376), True),  # across x = 2560
        (Box(1420, 1609, 1792, 1720), True),  # just below y = 1600, within the tolerance
        (Box(4984, 2858, 5216, 3840), True),  # across y = 3200
        (Box(9271, 3400, 9402, 3463), False),  # inside a tile
        (Box(6304, 4864, 6560, 5120), False),
        (Box(10, 10, 100, 100), False),  # the image border is no seam
        (Box(2600, 1650, 5000, 3150), False),  # inside one tile, 40 px from its edges
    ],
)
def test_false_boxes_on_mosaic_seams_are_recognised(ecb, box: Box, expected: bool) -> None:
    assert ecb.on_seam(box, (2560, 1600)) is expected
