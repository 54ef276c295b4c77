"""Chat conversations built from a probing episode (live history or a saved trajectory).

An episode becomes a list of events — the global view, the assistant's
actions, crops returned by the zoom tool, error notices — and one builder
turns events into a :class:`Conversation`: chat ``messages`` in the
structured form processors' chat templates take (``{"type": "image"}`` /
``{"type": "text"}`` parts) plus the images in order. Special tokens are
never written into strings: the transformers engine renders the messages with
the processor's chat template, the openai engine sends them as structured
content and the server applies its template.

Layout (Hermes-style, which Qwen-VL models know)::

    system     system prompt with the zoom tool's schema
    user       [overview image] overview text
    assistant  <think>…</think><tool_call>{…}</tool_call>
    user       <tool_response> [crop image] region …</tool_response> n zoom(s) left.
    assistant  …
    user       <tool_response>Error: …</tool_response> …          (after an unusable reply)

:func:`events_from_trajectory` rebuilds the same events from a trajectory and
the original image (crops are re-cut from their boxes), and
:func:`conversation_from_trajectory` the whole conversation, so SFT data
replays exactly what the model saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
from PIL import Image

from qprobe.agent import prompts
from qprobe.agent.actions import Action, Answer, Invalid, Zoom
from qprobe.agent.parsing import format_action, parse_reply
from qprobe.backends.vlm.coords import Frame, to_model
from qprobe.types import Box, Defect, Trajectory


@dataclass(frozen=True)
class GlobalView:
    image: np.ndarray
    original_size: tuple[int, int]


@dataclass(frozen=True)
class AssistantTurn:
    action: Action


@dataclass(frozen=True)
class CropView:
    image: np.ndarray
    box: Box
    zooms_left: int


@dataclass(frozen=True)
class ErrorNotice:
    message: str
    zooms_left: int


Event = Union[GlobalView, AssistantTurn, CropView, ErrorNotice]
Sizer = Callable[[int, int], tuple[int, int]]


@dataclass
class Conversation:
    """Chat messages with ``{"type": "image"}`` placeholders, and the images in order."""

    messages: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.images)


def fit_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale (aspect kept) so that width x height <= ``max_pixels``; never upscales."""
    w, h = image.size
    if max_pixels is None or w * h <= max_pixels:
        return image
    s = (max_pixels / (w * h)) ** 0.5
    size = (max(1, int(w * s)), max(1, int(h * s)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def prepare_image(pixels: np.ndarray, sizer: Sizer | None = None, max_pixels: int | None = None) -> Image.Image:
    """An RGB array as the image a model is sent: capped at ``max_pixels``, then resized by ``sizer``."""
    img = fit_pixels(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), max_pixels)
    if sizer is not None:
        size = sizer(*img.size)
        if size != img.size:
            img = img.resize(size, Image.Resampling.BICUBIC)
    return img


def build_conversation(
    events: Sequence[Event],
    frame: Frame,
    max_zooms: int,
    *,
    sizer: Sizer | None = None,
    crop_max_pixels: int | None = None,
) -> Conversation:
    """Events → a conversation ready for a chat template.

    ``sizer`` (optional) maps an image's ``(w, h)`` to the size the model
    sees: the openai engine pre-resizes images with the server's rule so that
    ``absolute`` boxes refer to what was sent. ``crop_max_pixels`` caps the
    pixels of each crop (the crop budget); the global view is sent as is.
    """
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": prompts.system_prompt(frame.describe(), max_zooms)}]}
    ]
    images: list[Image.Image] = []
    for ev in events:
        if isinstance(ev, GlobalView):
            images.append(prepare_image(ev.image, sizer, None))
            w, h = ev.original_size
            text = prompts.overview_text(w, h)
            messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
        elif isinstance(ev, AssistantTurn):
            messages.append({"role": "assistant", "content": [{"type": "text", "text": format_action(ev.action, frame)}]})
        elif isinstance(ev, CropView):
            images.append(prepare_image(ev.image, sizer, crop_max_pixels))
            head, tail = prompts.crop_text(to_model(ev.box, frame), (ev.image.shape[1], ev.image.shape[0]), ev.zooms_left)
            content = [{"type": "text", "text": head}, {"type": "image"}, {"type": "text", "text": tail}]
            messages.append({"role": "user", "content": content})
        elif isinstance(ev, ErrorNotice):
            text = prompts.error_text(ev.message, ev.zooms_left)
            messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
    return Conversation(messages, images)


def original_size(view: np.ndarray, scale: float) -> tuple[int, int]:
    """The original image's ``(width, height)`` from a global view and its scale."""
    vh, vw = view.shape[:2]
    return int(round(vw / scale)), int(round(vh / scale))


def events_from_history(history: Sequence[Any], size: tuple[int, int] | None = None) -> list[Event]:
    """Events of a live episode (``ProbeEnv.history``: turns of observation + action).

    ``size`` is the original image's ``(w, h)``; estimated from the global view when omitted.
    """
    events: list[Event] = []
    for turn in history:
        obs = turn.observation
        if obs.kind == "global" and obs.image is not None:
            events.append(GlobalView(obs.image, size or original_size(obs.image, obs.scale)))
        elif obs.kind == "crop" and obs.image is not None and obs.box is not None:
            events.append(CropView(obs.image, obs.box, obs.zooms_left))
        elif obs.kind == "error":
            events.append(ErrorNotice(obs.message, obs.zooms_left))
        if turn.action is not None:
            events.append(AssistantTurn(turn.action))
    return events


def _assistant_zoom(text: str, box: Box) -> Action:
    return Zoom(box, raw=text) if text and parse_reply(text).kind == "zoom" else Zoom(box, thought=text)


def events_from_trajectory(traj: Trajectory, original: np.ndarray) -> list[Event]:
    """Events of a saved episode; crops are cut again from ``original`` by their boxes.

    The global view is recomputed with the episode's ``view_long_side``; its
    fingerprint is checked so a different image fails loudly.
    """
    from qprobe.agent.env import fingerprint, global_view

    h, w = original.shape[:2]
    if (w, h) != tuple(traj.image_size):
        raise ValueError(f"image is {w}x{h} but the trajectory was recorded on {traj.image_size}")
    env_cfg = dict(traj.meta.get("env") or {})
    budget = int(traj.meta.get("zoom_budget", env_cfg.get("max_zooms", 4)))
    zooms_left = budget
    events: list[Event] = []
    steps = traj.steps
    i = 0
    while i < len(steps):
        step = steps[i]
        if step.kind == "observe" and step.data.get("view") == "global":
            view, _ = global_view(original, int(env_cfg.get("view_long_side", 672)))
            want = step.data.get("fingerprint")
            if want is not None and fingerprint(view) != want:
                raise ValueError("the global view does not match the trajectory (different image or resize)")
            events.append(GlobalView(view, (w, h)))
        elif step.kind == "zoom" and step.box is not None:
            events.append(AssistantTurn(_assistant_zoom(step.text, step.box)))
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            if nxt is not None and nxt.kind == "error":  # the env refused this zoom
                events.append(ErrorNotice(nxt.text, zooms_left))
                i += 1
        elif step.kind == "observe" and step.box is not None:
            x1, y1, x2, y2 = step.box.to_int()
            zooms_left -= 1
            events.append(CropView(original[y1:y2, x1:x2], step.box, zooms_left))
        elif step.kind == "error":
            events.append(AssistantTurn(Invalid(step.text, raw=str(step.data.get("raw", "")))))
            events.append(ErrorNotice(step.text, zooms_left))
        elif step.kind == "answer":
            text = step.text
            if text and parse_reply(text).kind == "answer":
                events.append(AssistantTurn(Answer(float(step.data.get("score", 0.0)), raw=text)))
            else:
                defects = tuple(Defect.from_dict(d) for d in step.data.get("defects", []))
                reasons = tuple(step.data.get("reasons", []))
                events.append(AssistantTurn(Answer(float(step.data["score"]), defects, reasons, thought=text)))
        i += 1
    return events


def conversation_from_trajectory(
    traj: Trajectory,
    original: np.ndarray,
    convention: str,
    model_size: Callable[[int, int], tuple[int, int]],
    *,
    sizer: Sizer | None = None,
    crop_max_pixels: int | None = None,
) -> Conversation:
    """The whole conversation of a saved episode (final answer included), e.g. for SFT.

    ``convention`` and ``model_size`` are those of the model to train (a
    backend's ``convention`` / ``model_size``): forced and teacher actions
    without text are rendered in its coordinates. Render the result with the
    processor's chat template only.
    """
    events = events_from_trajectory(traj, original)
    view = next(ev for ev in events if isinstance(ev, GlobalView))
    h, w = original.shape[:2]
    frame = Frame(convention, (w, h), model_size(view.image.shape[1], view.image.shape[0]))
    budget = int(traj.meta.get("zoom_budget", (traj.meta.get("env") or {}).get("max_zooms", 4)))
    return build_conversation(events, frame, budget, sizer=sizer, crop_max_pixels=crop_max_pixels)
