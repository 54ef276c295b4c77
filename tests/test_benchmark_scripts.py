"""Helpers of the benchmark scripts: mosaic seams (eval_classic_bench.py), oracle zooms (eval_oracle_zooms.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qprobe.types import Box

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ecb():
    return _script("eval_classic_bench")


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


def test_oracle_zooms_are_squares_on_each_defect_at_least_a_zoom_wide() -> None:
    from types import SimpleNamespace

    from qprobe.types import Defect

    oz = _script("eval_oracle_zooms")
    row = SimpleNamespace(defects=[Defect(Box(100, 200, 180, 240), "jpeg", 3), Defect(Box(0, 0, 900, 500), "haze", 2)])
    small, large = oz.oracle_boxes(row, 320.0)
    assert (small.width, small.height) == (320.0, 320.0) and small.center == (140.0, 220.0)
    assert (large.width, large.height) == (900.0, 900.0) and large.center == (450.0, 250.0)
