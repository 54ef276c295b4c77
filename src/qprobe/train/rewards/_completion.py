"""From a TRL completion to the parsed replies it contains.

TRL hands a reward either a string (single-turn, non-conversational) or a
list of chat messages (conversational; in the multi-turn tool loop the list
interleaves assistant turns and ``tool`` messages, and a tool call arrives
already split out into ``tool_calls``). Each assistant turn is one reply,
read by the agent's parser (:func:`qprobe.agent.parsing.parse_reply`), so
training and inference read model output with exactly the same grammar.
A ``tool_calls`` entry is rendered back to its ``<tool_call>`` text and
parsed the same way.

Replies keep boxes in the **model's frame**; rewards convert them with a
:class:`~qprobe.backends.vlm.coords.Frame` built from the row's columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qprobe.agent.parsing import ParsedReply, parse_reply

Completion = str | Sequence[dict[str, Any]]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def _call_text(call: Any) -> str:
    fn = call.get("function", call) if isinstance(call, dict) else call
    try:
        body = json.dumps({"name": fn.get("name"), "arguments": fn.get("arguments")})
    except (AttributeError, TypeError, ValueError):
        body = str(call)
    return f"<tool_call>\n{body}\n</tool_call>"


def completion_replies(completion: Completion) -> list[ParsedReply]:
    """The parsed reply of every assistant turn of ``completion``, in order."""
    if isinstance(completion, str):
        return [parse_reply(completion)]
    replies: list[ParsedReply] = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls")
        if calls:
            thought = _text_of(message.get("reasoning_content")) or _text_of(message.get("content"))
            prefix = f"<think>{thought.strip()}</think>\n" if thought.strip() else ""
            replies.extend(parse_reply(prefix + _call_text(c)) for c in calls)
        else:
            text = _text_of(message.get("content"))
            reasoning = _text_of(message.get("reasoning_content"))
            if reasoning.strip():
                text = f"<think>{reasoning.strip()}</think>\n{text}"
            replies.append(parse_reply(text))
    return replies


def final_answer(completion: Completion) -> ParsedReply | None:
    """The answer that ends ``completion`` (score inside 1–5), or ``None``."""
    replies = completion_replies(completion)
    if not replies or replies[-1].kind != "answer" or replies[-1].score is None:
        return None
    return replies[-1]


def final_score(completion: Completion) -> float | None:
    """The score of :func:`final_answer`, or ``None`` (parse failure, no answer)."""
    answer = final_answer(completion)
    return None if answer is None else float(answer.score)  # type: ignore[arg-type]


def is_well_formed(completion: Completion) -> bool:
    """Every assistant turn parses strictly and the last one is an answer."""
    replies = completion_replies(completion)
    return bool(replies) and all(r.well_formed for r in replies) and replies[-1].kind == "answer"
