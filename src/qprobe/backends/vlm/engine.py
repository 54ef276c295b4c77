"""The text-generation interface the LLM backends implement.

An engine turns conversations into assistant replies. ``transformers``
generates a whole batch in one forward pass; ``openai`` sends one HTTP
request per conversation. Engines raise :class:`EngineError` for failures of
the engine itself (server down after retries, out of memory) — never for a
reply that does not parse, which the policy turns into an error turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qprobe.backends.vlm.messages import Conversation
from qprobe.errors import QProbeError


class EngineError(QProbeError, RuntimeError):
    """The model could not be run (server unreachable after retries, bad request, OOM, ...)."""


@dataclass
class Generation:
    """One assistant reply. ``expected_score`` is set in expected-score mode when the reply has a score."""

    text: str
    expected_score: float | None = None
    n_prompt_tokens: int | None = None
    n_new_tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ChatEngine(Protocol):
    """Generates one reply per conversation, in order."""

    batched: bool
    """True when one call over many conversations is cheaper than many calls (a local model)."""

    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]: ...

    def decoding(self) -> dict[str, Any]:
        """Decoding settings, recorded in every trajectory."""
        ...
