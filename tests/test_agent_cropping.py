"""Context-aware cropping: enlargement, clamping, minimum side, aspect ratio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qprobe.agent.cropping import CropConfig, CropError, context_box
from qprobe.types import Box


def test_enlarged_about_centre_by_factor() -> None:
    eff = context_box(Box(400, 300, 600, 500), (2000, 1000), CropConfig(context_factor=1.5))
    assert eff == Box(350, 250, 650, 550)
    assert eff.center == (500, 400)


def test_box_at_border_is_shifted_inside_keeping_size() -> None:
    eff = context_box(Box(0, 0, 200, 100), (1000, 800), CropConfig(context_factor=1.5))
    assert (eff.x1, eff.y1) == (0, 0)
    assert (eff.width, eff.height) == (300, 150)
    eff = context_box(Box(900, 700, 1000, 800), (1000, 800), CropConfig(context_factor=1.5))
    assert (eff.x2, eff.y2) == (1000, 800)
    assert (eff.width, eff.height) == (150, 150)


def test_partly_outside_box_is_clipped_first() -> None:
    eff = context_box(Box(-100, -100, 100, 100), (1000, 1000), CropConfig(context_factor=1.0))
    assert eff == Box(0, 0, 100, 100)


def test_minimum_side_is_in_view_pixels() -> None:
    # view_scale 0.25: 28 view px = 112 original px
    eff = context_box(Box(500, 500, 510, 510), (4000, 3000), CropConfig(context_factor=1.0), view_scale=0.25)
    assert eff.width == pytest.approx(112, abs=1)
    assert eff.height == pytest.approx(112, abs=1)


def test_max_aspect_ratio() -> None:
    eff = context_box(Box(100, 500, 1900, 510), (2000, 1000), CropConfig(context_factor=1.0, max_aspect=3.0))
    assert eff.width / eff.height <= 3.0 + 0.01


def test_box_larger_than_image_becomes_the_image() -> None:
    assert context_box(Box(0, 0, 900, 700), (1000, 800)) == Box(0, 0, 1000, 800)


@pytest.mark.parametrize("box", [Box(2000, 0, 2100, 50), Box(10, 10, 10, 80), Box(-50, -50, -1, -1)])
def test_box_that_misses_the_image_is_an_error(box: Box) -> None:
    with pytest.raises(CropError, match="does not overlap"):
        context_box(box, (1000, 800))


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError):
        CropConfig(context_factor=0.5)


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(-500, 3000),
    y=st.floats(-500, 3000),
    bw=st.floats(0.5, 3000),
    bh=st.floats(0.5, 3000),
    w=st.integers(30, 2500),
    h=st.integers(30, 2500),
    scale=st.floats(0.05, 1.0),
)
def test_properties(x: float, y: float, bw: float, bh: float, w: int, h: int, scale: float) -> None:
    box = Box(x, y, x + bw, y + bh)
    cfg = CropConfig()
    try:
        eff = context_box(box, (w, h), cfg, view_scale=scale)
    except CropError:
        assert box.clip(w, h).area == 0
        return
    vals = eff.to_list(None)
    assert all(float(v).is_integer() for v in vals)  # exact pixel slicing
    assert 0 <= eff.x1 < eff.x2 <= w and 0 <= eff.y1 < eff.y2 <= h
    clipped = box.clip(w, h)
    assert eff.contains(Box(*(round(v, 6) for v in clipped.to_list(None)))) or clipped.width < 1 or clipped.height < 1
    min_side = min(cfg.min_side_view / scale, w, h)
    assert eff.width >= min(min_side, w) - 1 and eff.height >= min(min_side, h) - 1
