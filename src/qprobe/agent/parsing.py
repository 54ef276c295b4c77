"""Text ⇄ actions for LLM policies (Hermes-style tool calls, DESIGN §2.2).

A model's turn is ``<think>…</think>`` followed by exactly one of::

    <tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [x1, y1, x2, y2]}}</tool_call>
    <answer>{"score": 3.42, "defects": [{"bbox_2d": [...], "type": "noise"}], "reasons": [...]}</answer>

:func:`parse_reply` turns text into a :class:`ParsedReply` in the **model's
coordinates** and never raises: anything it cannot read becomes
``kind == "invalid"`` with a message the model is shown in an error turn (and
that evaluation counts) — never a made-up score. Tolerated deviations (code
fences, a missing closing tag at the end of a truncated reply, numbers as
strings, trailing text) are accepted but listed in ``warnings``, so
``well_formed`` stays strict for the training format reward.

:func:`to_action` converts a parsed reply into an agent action in original
pixels through a :class:`~qprobe.backends.vlm.coords.Frame`;
:func:`format_action` is the inverse, used to replay trajectories (forced
zooms, SFT data) as assistant turns.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qprobe.agent.actions import Action, Answer, Invalid, Zoom
from qprobe.agent.prompts import ZOOM_TOOL_NAME
from qprobe.backends.vlm.coords import Frame, from_model, to_model
from qprobe.types import SCORE_MAX, SCORE_MIN, Defect

ZOOM_ALIASES = frozenset({ZOOM_TOOL_NAME, "zoom", "zoom_in_tool", "image_zoom_in_tool", "crop"})
"""Tool names accepted for the zoom tool (names other agents' checkpoints use)."""

_BOX_KEYS = ("bbox_2d", "bbox", "box")
_TAG = re.compile(r"<\s*(/?)\s*(tool_call|answer|think)\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_SPECIAL_TAIL = re.compile(r"(<\|im_end\|>|<\|endoftext\|>)+\s*$")


@dataclass(frozen=True)
class ParsedDefect:
    """A defect as the model wrote it (box in model coordinates)."""

    bbox: tuple[float, float, float, float]
    type: str
    severity: int | None = None
    confidence: float = 1.0


@dataclass(frozen=True)
class ParsedReply:
    """One model turn, parsed. ``kind`` is ``"zoom"``, ``"answer"`` or ``"invalid"``."""

    kind: str
    raw: str
    thought: str = ""
    bbox: tuple[float, float, float, float] | None = None
    score: float | None = None
    defects: tuple[ParsedDefect, ...] = ()
    reasons: tuple[str, ...] = ()
    error: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.kind != "invalid"

    @property
    def well_formed(self) -> bool:
        """Parsed without any tolerated deviation (strict format)."""
        return self.ok and not self.warnings


class _Bad(Exception):
    """Internal: the reply cannot be used; the message goes back to the model."""


# -- low-level readers ------------------------------------------------------------


def _number(value: Any, what: str, warnings: list[str]) -> float:
    if isinstance(value, bool):
        raise _Bad(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        num = float(value)
    elif isinstance(value, str) and _NUMBER.match(value):
        warnings.append(f"{what} written as a string")
        num = float(value)
    else:
        raise _Bad(f"{what} must be a number, got {_short(value)}")
    if not math.isfinite(num):
        raise _Bad(f"{what} must be finite, got {value!r}")
    return num


def _box(value: Any, what: str, warnings: list[str]) -> tuple[float, float, float, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Bad(f"{what} must be a list of 4 numbers, got {_short(value)}") from None
        warnings.append(f"{what} written as a string")
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (list, tuple)):
        warnings.append(f"{what} nested in an extra list")
        value = value[0]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise _Bad(f"{what} must be a list of 4 numbers [x1, y1, x2, y2], got {_short(value)}")
    x1, y1, x2, y2 = (_number(v, what, warnings) for v in value)
    return (x1, y1, x2, y2)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loads(text: str, what: str, warnings: list[str]) -> Any:
    """JSON from a block's content, tolerating code fences and trailing text."""
    body = text.strip()
    fence = _FENCE.match(body)
    if fence:
        warnings.append(f"{what} wrapped in a code fence")
        body = fence.group(1).strip()
    if not body:
        raise _Bad(f"{what} is empty")
    try:
        return json.loads(body)
    except ValueError:
        pass
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if starts:
        try:
            value, _ = json.JSONDecoder().raw_decode(body, min(starts))
            warnings.append(f"{what} has text around its JSON")
            return value
        except ValueError:
            pass
    raise _Bad(f"{what} is not valid JSON: {_short(body)}")


# -- blocks -------------------------------------------------------------------------


def _split(text: str, warnings: list[str]) -> tuple[str, str | None, str | None]:
    """(thought, action tag, action content) of a reply."""
    tags = list(_TAG.finditer(text))
    thought = ""
    think_end = 0
    opens = [m for m in tags if m.group(2).lower() == "think" and not m.group(1)]
    if opens:
        start = opens[0]
        close = next((m for m in tags if m.start() >= start.end() and m.group(2).lower() == "think" and m.group(1)), None)
        if close is None:
            nxt = next((m for m in tags if m.start() > start.end() and m.group(2).lower() != "think"), None)
            end = nxt.start() if nxt else len(text)
            warnings.append("<think> is not closed")
            thought, think_end = text[start.end() : end], end
        else:
            thought, think_end = text[start.end() : close.start()], close.end()
    actions = [m for m in tags if m.start() >= think_end and m.group(2).lower() != "think" and not m.group(1)]
    if not actions:
        return thought.strip(), None, None
    first = actions[0]
    tag = first.group(2).lower()
    close = next(
        (m for m in tags if m.start() >= first.end() and m.group(2).lower() == tag and m.group(1)), None
    )
    if close is None:
        warnings.append(f"<{tag}> is not closed")
        content = text[first.end() :]
        after = ""
    else:
        content = text[first.end() : close.start()]
        after = text[close.end() :]
    if len(actions) > 1 and (close is None or any(m.start() >= close.end() for m in actions[1:])):
        warnings.append("more than one action in the reply; only the first is used")
        nxt = next((m for m in actions[1:] if close is None or m.start() >= close.end()), None)
        if close is None and nxt is not None:
            content = text[first.end() : nxt.start()]
    elif after.strip():
        warnings.append("text after the action")
    return thought.strip(), tag, content


def _tool_call(content: str, warnings: list[str]) -> tuple[float, float, float, float]:
    obj = _loads(content, "the tool call", warnings)
    if isinstance(obj, list):
        if not obj:
            raise _Bad("the tool call is an empty list")
        if len(obj) > 1:
            warnings.append("more than one tool call; only the first is used")
        obj = obj[0]
    if not isinstance(obj, dict):
        raise _Bad(f"the tool call must be a JSON object, got {_short(obj)}")
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name")
    args: Any = fn.get("arguments", fn.get("parameters"))
    if isinstance(args, str):
        args = _loads(args, "the tool arguments", warnings)
    if args is None:
        args = fn
        if any(k in fn for k in _BOX_KEYS):
            warnings.append("tool arguments not wrapped in 'arguments'")
    if not isinstance(args, dict):
        raise _Bad(f"the tool arguments must be a JSON object, got {_short(args)}")
    if name is None:
        warnings.append("tool call without a name")
    elif str(name) not in ZOOM_ALIASES:
        raise _Bad(f"unknown tool {str(name)!r}; the only tool is {ZOOM_TOOL_NAME!r}")
    elif name != ZOOM_TOOL_NAME:
        warnings.append(f"tool called as {name!r} instead of {ZOOM_TOOL_NAME!r}")
    key = next((k for k in _BOX_KEYS if k in args), None)
    if key is None:
        raise _Bad(f"the {ZOOM_TOOL_NAME} call needs 'bbox_2d': [x1, y1, x2, y2]")
    if key != "bbox_2d":
        warnings.append(f"box given as {key!r} instead of 'bbox_2d'")
    return _box(args[key], "bbox_2d", warnings)


def _defects(value: Any, warnings: list[str]) -> tuple[ParsedDefect, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        warnings.append(f"'defects' must be a list, got {_short(value)}; ignored")
        return ()
    out = []
    for i, item in enumerate(value):
        try:
            if not isinstance(item, dict):
                raise _Bad(f"defects[{i}] must be an object")
            key = next((k for k in _BOX_KEYS if k in item), None)
            if key is None:
                raise _Bad(f"defects[{i}] has no 'bbox_2d'")
            bbox = _box(item[key], f"defects[{i}].bbox_2d", warnings)
            dtype = item.get("type", item.get("label"))
            if not isinstance(dtype, str) or not dtype.strip():
                warnings.append(f"defects[{i}] has no type")
                dtype = "other"
            sev = item.get("severity")
            severity = None if sev is None else int(round(_number(sev, f"defects[{i}].severity", warnings)))
            conf = item.get("confidence")
            confidence = 1.0 if conf is None else _number(conf, f"defects[{i}].confidence", warnings)
            out.append(ParsedDefect(bbox, dtype.strip(), severity, min(1.0, max(0.0, confidence))))
        except _Bad as exc:
            warnings.append(f"{exc}; defect dropped")
    return tuple(out)


def _reasons(obj: dict[str, Any], warnings: list[str]) -> tuple[str, ...]:
    value = obj.get("reasons", obj.get("reason"))
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    warnings.append("'reasons' must be a list of strings; ignored")
    return ()


def _answer(content: str, warnings: list[str]) -> tuple[float, tuple[ParsedDefect, ...], tuple[str, ...]]:
    if _NUMBER.match(content):
        warnings.append("answer is a bare number")
        obj: Any = {"score": float(content)}
    else:
        obj = _loads(content, "the answer", warnings)
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        warnings.append("answer is a bare number")
        obj = {"score": obj}
    if not isinstance(obj, dict):
        raise _Bad(f"the answer must be a JSON object with a 'score', got {_short(obj)}")
    if "score" not in obj:
        raise _Bad("the answer has no 'score'")
    score = _number(obj["score"], "score", warnings)
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise _Bad(f"score {score:g} is outside the {SCORE_MIN:g}-{SCORE_MAX:g} scale")
    return score, _defects(obj.get("defects"), warnings), _reasons(obj, warnings)


# -- public API -----------------------------------------------------------------------


def parse_reply(text: Any) -> ParsedReply:
    """Parse one model turn; never raises (malformed text → ``kind == "invalid"``)."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    warnings: list[str] = []
    thought = ""
    try:
        body = _SPECIAL_TAIL.sub("", raw)
        thought, tag, content = _split(body, warnings)
        if tag is None:
            raise _Bad("no <tool_call> or <answer> found; reply with exactly one of them")
        assert content is not None
        if tag == "tool_call":
            bbox = _tool_call(content, warnings)
            return ParsedReply("zoom", raw, thought, bbox=bbox, warnings=tuple(warnings))
        score, defects, reasons = _answer(content, warnings)
        return ParsedReply(
            "answer", raw, thought, score=score, defects=defects, reasons=reasons, warnings=tuple(warnings)
        )
    except _Bad as exc:
        return ParsedReply("invalid", raw, thought, error=str(exc), warnings=tuple(warnings))
    except Exception as exc:  # the parser must never take an episode down
        return ParsedReply(
            "invalid", raw, thought, error=f"unreadable reply ({type(exc).__name__}: {exc})", warnings=tuple(warnings)
        )


def parse_answer_object(text: Any) -> tuple[dict[str, Any] | None, str]:
    """The JSON object inside a reply's ``<answer>`` block, for prompts other than probing.

    Returns ``(object, "")`` or ``(None, reason)``; never raises.
    """
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    warnings: list[str] = []
    try:
        _, tag, content = _split(_SPECIAL_TAIL.sub("", raw), warnings)
        if tag != "answer" or content is None:
            return None, "no <answer> found"
        obj = _loads(content, "the answer", warnings)
        if not isinstance(obj, dict):
            return None, f"the answer must be a JSON object, got {_short(obj)}"
        return obj, ""
    except _Bad as exc:
        return None, str(exc)
    except Exception as exc:  # never take a caller down
        return None, f"unreadable reply ({type(exc).__name__}: {exc})"


def to_action(parsed: ParsedReply, frame: Frame) -> Action:
    """A parsed reply → an agent action with boxes in original pixels."""
    if parsed.kind == "zoom" and parsed.bbox is not None:
        try:
            return Zoom(from_model(parsed.bbox, frame), raw=parsed.raw, thought=parsed.thought)
        except ValueError as exc:
            return Invalid(f"bad zoom box: {exc}", raw=parsed.raw, thought=parsed.thought)
    if parsed.kind == "answer" and parsed.score is not None:
        defects = []
        for d in parsed.defects:
            try:
                defects.append(Defect(from_model(d.bbox, frame), d.type, d.severity, d.confidence))
            except ValueError:
                continue  # a defect box outside the image is dropped, the answer stands
        return Answer(parsed.score, tuple(defects), parsed.reasons, raw=parsed.raw, thought=parsed.thought)
    return Invalid(parsed.error or "unusable reply", raw=parsed.raw, thought=parsed.thought)


def parse_action(text: Any, frame: Frame) -> Action:
    """``to_action(parse_reply(text), frame)``."""
    return to_action(parse_reply(text), frame)


def _think(thought: str) -> str:
    return f"<think>{thought.strip()}</think>\n" if thought.strip() else ""


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else round(float(v), 2)


def format_zoom(bbox: Sequence[float], thought: str = "") -> str:
    """The assistant text of a zoom call (``bbox`` in model coordinates)."""
    call = {"name": ZOOM_TOOL_NAME, "arguments": {"bbox_2d": [_num(v) for v in bbox]}}
    return f"{_think(thought)}<tool_call>\n{json.dumps(call)}\n</tool_call>"


def format_answer(
    score: float,
    defects: Sequence[tuple[Sequence[float], str]] = (),
    reasons: Sequence[str] = (),
    thought: str = "",
) -> str:
    """The assistant text of an answer (defect boxes in model coordinates)."""
    body: dict[str, Any] = {
        "score": round(float(score), 4),
        "defects": [{"bbox_2d": [_num(v) for v in box], "type": t} for box, t in defects],
    }
    if reasons:
        body["reasons"] = list(reasons)
    return f"{_think(thought)}<answer>\n{json.dumps(body, ensure_ascii=False)}\n</answer>"


def format_action(action: Action, frame: Frame) -> str:
    """An action as assistant text; the model's own text when it has one.

    Forced zooms and non-LLM teachers have no text: theirs is rendered in the
    model's coordinates, so the conversation reads as if the model wrote it.
    """
    if action.raw:
        return action.raw
    if isinstance(action, Zoom):
        return format_zoom(to_model(action.box, frame), action.thought)
    if isinstance(action, Answer):
        return format_answer(
            action.score, [(to_model(d.bbox, frame), d.type) for d in action.defects], action.reasons, action.thought
        )
    return action.raw  # an unusable reply is replayed verbatim (possibly empty)
