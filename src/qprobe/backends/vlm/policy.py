"""The LLM policy: history → conversation → reply → action.

:class:`VLMPolicy` is what ``run_episode`` drives for the ``transformers``
and ``openai`` backends. Each turn it rebuilds the conversation from the
episode's history (:mod:`.messages`), asks its engine for one reply, parses
it (:mod:`qprobe.agent.parsing`) and converts boxes from the model's frame to
original pixels (:mod:`.coords`). An unparsable reply becomes an
:class:`~qprobe.agent.actions.Invalid` action — an error turn the model sees,
counted in the trajectory — never a guessed score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from qprobe.agent.actions import Action, Answer
from qprobe.agent.parsing import parse_reply, to_action
from qprobe.backends.vlm.coords import Frame
from qprobe.backends.vlm.engine import Generation
from qprobe.backends.vlm.messages import (
    Conversation,
    Sizer,
    build_conversation,
    events_from_history,
    original_size,
)

Generate = Callable[[Conversation], Generation]


class VLMPolicy:
    """Drives one episode with a multimodal LLM.

    ``generate`` returns one reply for a conversation; ``model_size`` maps
    the global view's ``(w, h)`` to the size the model sees it at (the frame
    of ``absolute`` boxes); ``sizer`` (optional) resizes every image before
    sending (openai); ``original_size`` is the original image's ``(w, h)``
    (estimated from the global view's scale when not given); ``expected_score`` replaces the greedy score by the
    expectation over the score digit's probabilities when the engine gives it.
    """

    def __init__(
        self,
        generate: Generate,
        *,
        convention: str,
        model_size: Callable[[int, int], tuple[int, int]],
        sizer: Sizer | None = None,
        crop_max_pixels: int | None = None,
        expected_score: bool = False,
        original_size: tuple[int, int] | None = None,
        on_turn: Callable[[int, Conversation, Generation], None] | None = None,
    ) -> None:
        self._generate = generate
        self.convention = convention
        self._model_size = model_size
        self.sizer = sizer
        self.crop_max_pixels = crop_max_pixels
        self.expected_score = expected_score
        self._on_turn = on_turn
        self._original_size = original_size
        self.frame: Frame | None = None
        self.turns = 0
        self.generations: list[Generation] = []

    def _frame(self, history: Sequence[Any]) -> Frame:
        if self.frame is None:
            first = history[0].observation
            vh, vw = first.image.shape[:2]
            size = self._original_size or original_size(first.image, first.scale)
            self.frame = Frame(self.convention, size, self._model_size(vw, vh))
        return self.frame

    def conversation(self, history: Sequence[Any]) -> Conversation:
        """The conversation the model is shown for the next turn."""
        frame = self._frame(history)
        budget = history[0].observation.zooms_left  # the episode's zooms, forced ones included
        return build_conversation(
            events_from_history(history, frame.original),
            frame,
            budget,
            sizer=self.sizer,
            crop_max_pixels=self.crop_max_pixels,
        )

    def act(self, history: Sequence[Any]) -> Action:
        conv = self.conversation(history)
        gen = self._generate(conv)
        self.turns += 1
        self.generations.append(gen)
        if self._on_turn is not None:
            self._on_turn(self.turns, conv, gen)
        assert self.frame is not None
        action = to_action(parse_reply(gen.text), self.frame)
        if self.expected_score and isinstance(action, Answer) and gen.expected_score is not None:
            action = replace(action, score=float(gen.expected_score))
        return action
