"""The LLM action parser: table tests of real-looking outputs, round trips, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qprobe.agent.actions import Answer, Invalid, Zoom
from qprobe.agent.parsing import (
    format_action,
    format_answer,
    format_zoom,
    parse_action,
    parse_reply,
)
from qprobe.backends.vlm.coords import Frame
from qprobe.types import Box, Defect

FRAME = Frame("absolute", original=(4000, 3000), model=(1000, 750))

# (model output, kind, bbox or score, well_formed)
TABLE = [
    # Qwen2.5-VL style, the exact format of the prompt.
    (
        '<think>The sky looks banded.</think>\n<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [120, 40, 380, 200]}}\n</tool_call>',
        "zoom", (120, 40, 380, 200), True,
    ),
    # no think, compact JSON
    ('<tool_call>{"name":"zoom_in","arguments":{"bbox_2d":[0,0,10,10]}}</tool_call>', "zoom", (0, 0, 10, 10), True),
    # arguments as a JSON string (OpenAI tool-call style)
    (
        '<tool_call>{"name": "zoom_in", "arguments": "{\\"bbox_2d\\": [5, 6, 70, 80]}"}</tool_call>',
        "zoom", (5, 6, 70, 80), True,
    ),
    # DeepEyes' tool name, "bbox" key, float coordinates
    (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox": [10.5, 20.25, 30, 40]}}</tool_call>',
        "zoom", (10.5, 20.25, 30, 40), False,
    ),
    # code fence inside the block
    (
        '<tool_call>\n```json\n{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}\n```\n</tool_call>',
        "zoom", (1, 2, 3, 4), False,
    ),
    # truncated by max_new_tokens after complete JSON: no closing tag
    ('<think>check</think><tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}', "zoom", (1, 2, 3, 4), False),
    # nested box list, numbers as strings
    ('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [["1", "2", "3", "4"]]}}</tool_call>', "zoom", (1, 2, 3, 4), False),
    # two calls: the first is used
    (
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>'
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [5, 6, 7, 8]}}</tool_call>',
        "zoom", (1, 2, 3, 4), False,
    ),
    # answers
    (
        '<think>Fine texture, slight noise in the shadows.</think>\n<answer>\n{"score": 3.42, "defects": [{"bbox_2d": [10, 20, 300, 400], "type": "noise"}], "reasons": ["noisy shadows"]}\n</answer>',
        "answer", 3.42, True,
    ),
    ('<answer>{"score": 5, "defects": []}</answer>', "answer", 5.0, True),
    ('<answer>{"score": 1.0}</answer><|im_end|>', "answer", 1.0, True),
    ("<answer>4.25</answer>", "answer", 4.25, False),
    ('<answer>{"score": "2.5", "defects": []}</answer>', "answer", 2.5, False),
    ('<ANSWER>{"score": 2}</ANSWER>', "answer", 2.0, True),
    ('<answer>{"score": 3.0, "defects": [{"type": "blur"}]}</answer>', "answer", 3.0, False),  # defect dropped
    ('Sure! <answer>{"score": 3.9} </answer> Hope this helps.', "answer", 3.9, False),
    # invalid outputs
    ("The image quality is good, I would say 4 out of 5.", "invalid", "no <tool_call> or <answer>", False),
    ("", "invalid", "no <tool_call> or <answer>", False),
    ('<answer>{"score": 7.5}</answer>', "invalid", "outside the 1-5 scale", False),
    ('<answer>{"score": 0}</answer>', "invalid", "outside the 1-5 scale", False),
    ('<answer>{"score": NaN}</answer>', "invalid", "finite", False),
    ('<answer>{"score": "good"}</answer>', "invalid", "must be a number", False),
    ('<answer>{"defects": []}</answer>', "invalid", "no 'score'", False),
    ("<answer>{'score': 3}</answer>", "invalid", "not valid JSON", False),
    ('<tool_call>{"name": "crop_and_rotate", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>', "invalid", "unknown tool", False),
    ('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3]}}</tool_call>', "invalid", "4 numbers", False),
    ('<tool_call>{"name": "zoom_in", "arguments": {"point": [1, 2]}}</tool_call>', "invalid", "needs 'bbox_2d'", False),
    ('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, true, 4]}}', "invalid", "must be a number", False),
    ('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3', "invalid", "not valid JSON", False),
    ("<tool_call></tool_call>", "invalid", "is empty", False),
    ("<think>I keep thinking and never finish", "invalid", "no <tool_call> or <answer>", False),
]


@pytest.mark.parametrize("text,kind,expect,well_formed", TABLE)
def test_table_of_real_looking_outputs(text: str, kind: str, expect: object, well_formed: bool) -> None:
    parsed = parse_reply(text)
    assert parsed.kind == kind, parsed
    assert parsed.raw == text
    assert parsed.well_formed is well_formed, parsed.warnings
    if kind == "zoom":
        assert parsed.bbox == tuple(float(v) for v in expect)  # type: ignore[union-attr]
    elif kind == "answer":
        assert parsed.score == pytest.approx(expect)
    else:
        assert str(expect) in parsed.error


def test_thought_and_defects_are_kept() -> None:
    parsed = parse_reply(TABLE[8][0])
    assert parsed.thought == "Fine texture, slight noise in the shadows."
    assert parsed.reasons == ("noisy shadows",)
    (d,) = parsed.defects
    assert d.bbox == (10, 20, 300, 400) and d.type == "noise"


def test_to_action_converts_boxes_to_original_pixels() -> None:
    zoom = parse_action('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [100, 75, 200, 150]}}</tool_call>', FRAME)
    assert isinstance(zoom, Zoom)
    assert zoom.box == Box(400, 300, 800, 600)
    answer = parse_action('<answer>{"score": 2.5, "defects": [{"bbox_2d": [0, 0, 500, 375], "type": "blur"}]}</answer>', FRAME)
    assert isinstance(answer, Answer)
    assert answer.defects[0].bbox == Box(0, 0, 2000, 1500)


def test_box_outside_the_image_is_an_error_turn() -> None:
    action = parse_action('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1200, 800, 1500, 900]}}</tool_call>', FRAME)
    assert isinstance(action, Invalid)
    assert "outside the image" in action.message
    assert action.raw.startswith("<tool_call>")


def test_invalid_keeps_raw_text_for_replay() -> None:
    action = parse_action("no idea", FRAME)
    assert isinstance(action, Invalid)
    assert format_action(action, FRAME) == "no idea"


def test_format_then_parse_round_trip() -> None:
    text = format_zoom([10, 20.5, 30, 40], thought="look at the wall")
    parsed = parse_reply(text)
    assert parsed.well_formed and parsed.bbox == (10, 20.5, 30, 40) and parsed.thought == "look at the wall"
    text = format_answer(3.25, [([1, 2, 3, 4], "noise")], ["noisy"], thought="done")
    parsed = parse_reply(text)
    assert parsed.well_formed and parsed.score == 3.25 and parsed.defects[0].type == "noise"
    assert json.loads(text.split("<answer>")[1].split("</answer>")[0])["reasons"] == ["noisy"]


def test_format_action_renders_forced_zoom_in_model_coordinates() -> None:
    text = format_action(Zoom(Box(400, 300, 800, 600)), FRAME)
    assert parse_reply(text).bbox == (100, 75, 200, 150)
    ans = Answer(4.0, (Defect(Box(0, 0, 2000, 1500), "blur"),), ("soft",))
    parsed = parse_reply(format_action(ans, FRAME))
    assert parsed.score == 4.0 and parsed.defects[0].bbox == (0, 0, 500, 375)


# -- fuzzing --------------------------------------------------------------------------

_fragments = st.sampled_from(
    [
        "<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "{", "}", "[", "]",
        '"score"', '"bbox_2d"', '"name"', '"zoom_in"', '"arguments"', ":", ",", "3.5", "-1", "1e999", "NaN",
        "null", "true", '"', "```json", "```", "\n", " ", "<|im_end|>", "\\", "ü", "\x00",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text_never_raises(text: str) -> None:
    parsed = parse_reply(text)
    assert parsed.kind in ("zoom", "answer", "invalid")
    action = parse_action(text, FRAME)
    assert isinstance(action, (Zoom, Answer, Invalid))


@settings(max_examples=150, deadline=None)
@given(st.lists(_fragments, max_size=40).map("".join))
def test_fuzz_tag_soup_never_raises_and_scores_stay_in_range(text: str) -> None:
    parsed = parse_reply(text)
    if parsed.kind == "answer":
        assert parsed.score is not None and 1.0 <= parsed.score <= 5.0
    if parsed.kind == "zoom":
        assert parsed.bbox is not None and len(parsed.bbox) == 4
    if parsed.kind == "invalid":
        assert parsed.error


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1000, allow_nan=False), min_size=4, max_size=4),
    st.floats(1, 5, allow_nan=False),
    st.integers(0, 400),
)
def test_fuzz_truncated_valid_replies_never_raise(box: list[float], score: float, cut: int) -> None:
    for text in (format_zoom(box, "t"), format_answer(score, [(box, "noise")], ["r"])):
        full = parse_reply(text)
        assert full.well_formed
        truncated = parse_reply(text[:cut])
        assert truncated.kind in ("zoom", "answer", "invalid")
