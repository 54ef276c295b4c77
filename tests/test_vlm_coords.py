"""Box conventions: resized ⇄ original round trips for Qwen2.5-VL (absolute) and Qwen2-VL (0–1000)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_vlm import marked_image
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from qprobe.agent.env import global_view
from qprobe.backends.vlm.coords import Frame, from_model, smart_resize, to_model
from qprobe.backends.vlm.families import FAMILIES, family_for_model_type
from qprobe.errors import MissingWeightsError
from qprobe.types import Box


def _red_box(img: np.ndarray) -> tuple[int, int, int, int]:
    mask = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@settings(max_examples=150, deadline=None)
@given(st.integers(28, 9000), st.integers(28, 9000), st.sampled_from([(3136, 12845056), (3136, 1003520), (3136, 50176)]))
def test_smart_resize_matches_transformers(w: int, h: int, limits: tuple[int, int]) -> None:
    tf = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    if max(w, h) / min(w, h) > 200:
        return
    th, tw = tf.smart_resize(h, w, factor=28, min_pixels=limits[0], max_pixels=limits[1])
    assert smart_resize(w, h, 28, *limits) == (tw, th)


@pytest.mark.parametrize("convention", ["absolute", "relative1000"])
@pytest.mark.parametrize("original", [(1920, 1080), (600, 1800), (640, 480)])
def test_model_boxes_point_at_the_same_pixels(convention: str, original: tuple[int, int]) -> None:
    """A box in original pixels → the model's numbers locate the same object in the resized view it sees
    (Qwen2.5-VL: pixels of that view; Qwen2-VL: thousandths of it), and back."""
    w, h = original
    obj = (w // 3, h // 4, w // 3 + w // 5, h // 4 + h // 6)
    img = marked_image(w, h, obj)
    view, _ = global_view(img, 672)
    model_size = smart_resize(view.shape[1], view.shape[0], 28, 3136, 12845056)
    seen = np.asarray(Image.fromarray(view).resize(model_size, Image.Resampling.NEAREST))
    frame = Frame(convention, original, model_size)
    numbers = to_model(Box(*obj), frame)
    found = _red_box(seen)
    if convention == "relative1000":  # thousandths of the seen view
        found = [round(v * 1000 / model_size[i % 2]) for i, v in enumerate(found)]
    tol = 2 if convention == "absolute" else 2 + 1000 / min(model_size)
    assert max(abs(a - b) for a, b in zip(numbers, found)) <= tol, (numbers, found)
    back = from_model(found, frame)
    tol = 2.5 * max(w / model_size[0], h / model_size[1]) + (0 if convention == "absolute" else max(w, h) / 1000)
    assert max(abs(a - b) for a, b in zip(back.to_list(None), obj)) <= tol


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["absolute", "relative1000"]),
    st.integers(64, 8000),
    st.integers(64, 8000),
    st.floats(0, 0.9),
    st.floats(0, 0.9),
    st.floats(0.02, 0.1),
    st.floats(0.02, 0.1),
)
def test_round_trip_original_model_original(conv: str, w: int, h: int, fx: float, fy: float, fw: float, fh: float) -> None:
    model = smart_resize(w, h, 28, 3136, 1003520)
    frame = Frame(conv, (w, h), model)
    box = Box(fx * w, fy * h, min(w, (fx + fw) * w), min(h, (fy + fh) * h))
    exact = from_model(to_model(box, frame, ndigits=6), frame)
    assert max(abs(a - b) for a, b in zip(exact.to_list(None), box.to_list(None))) < 1e-2 * max(w, h) / 1000 + 1e-3
    ints = from_model(to_model(box, frame), frame)  # the model writes integers
    ex, ey = frame.extent
    tol_x, tol_y = 0.5 * w / ex + 1e-6, 0.5 * h / ey + 1e-6
    for a, b, tol in zip(ints.to_list(None), box.to_list(None), (tol_x, tol_y, tol_x, tol_y)):
        assert abs(a - b) <= tol


def test_relative1000_spans_the_image() -> None:
    frame = Frame("relative1000", (4000, 3000), (1, 1))
    assert to_model(Box(0, 0, 4000, 3000), frame) == [0, 0, 1000, 1000]
    assert from_model([250, 500, 500, 1000], frame) == Box(1000, 1500, 2000, 3000)


def test_boxes_outside_the_image_are_clipped_or_rejected() -> None:
    frame = Frame("absolute", (2000, 1000), (1000, 500))
    assert from_model([900, 400, 1200, 700], frame) == Box(1800, 800, 2000, 1000)
    for bad in ([1100, 0, 1200, 100], [10, 10, 10, 50], [0, 0, float("inf"), 1], [1, 2, 3]):
        with pytest.raises(ValueError):
            from_model(bad, frame)
    with pytest.raises(ValueError, match="unknown box convention"):
        Frame("pixels", (1, 1), (1, 1))


def test_families_carry_their_conventions() -> None:
    assert family_for_model_type("qwen2_5_vl").box_convention == "absolute"
    assert family_for_model_type("qwen2_vl").box_convention == "relative1000"
    assert family_for_model_type("qwen3_vl").box_convention == "relative1000"
    assert FAMILIES.get("qwen3_vl").factor == 32
    with pytest.raises(MissingWeightsError, match="llama"):
        family_for_model_type("llama")
