"""A local Qwen-VL checkpoint as a batched :class:`~.engine.ChatEngine` (transformers).

Conversations are rendered **only** by the processor's chat template, padded
on the left, and generated in one batch. Greedy decoding is the default, so a
score repeats exactly for the same image and settings. Vision placeholder
tokens are suppressed in sampling (emitting one would break the rope index).

Expected-score mode: the reply's first score digit is located, and the
probabilities the model gave the digits 1–5 at that position give
``expected_score = sum(d * p(d))`` (Q-Align style), a smoother score than the
greedy digits.

Imports torch and transformers: imported only when the backend builds its engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

from qprobe.backends.vlm.engine import EngineError, Generation
from qprobe.backends.vlm.families import ModelFamily, check_checkpoint
from qprobe.backends.vlm.messages import Conversation
from qprobe.backends.vlm.processor import load_processor, resized_size

DEFAULT_MAX_NEW_TOKENS = 512
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
_SCORE_DIGIT = re.compile(r"<answer>\s*(?:\{[^{}]*?\"score\"\s*:\s*\"?\s*)?([1-5])", re.DOTALL)


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise EngineError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16") from None


def score_digit_ids(tokenizer: Any) -> list[int] | None:
    """Token ids of the digits 1–5, or ``None`` if a digit is not a single token."""
    ids = []
    for d in "12345":
        enc = tokenizer.encode(d, add_special_tokens=False)
        if len(enc) != 1:
            return None
        ids.append(enc[0])
    return ids


def expected_score(
    tokenizer: Any, digit_ids: list[int] | None, ids: list[int], text: str, logits: Sequence[torch.Tensor]
) -> float | None:
    """``sum(d * p(d))`` over the digits 1–5 at the position of the reply's first score digit.

    ``ids`` are the generated tokens, ``text`` their decoding and ``logits[k]``
    the logits that produced ``ids[k]``. ``None`` when the reply has no score.
    """
    if digit_ids is None:
        return None
    m = _SCORE_DIGIT.search(text)
    if m is None:
        return None
    target = m.start(1)
    for k in range(min(len(ids), len(logits))):
        if len(tokenizer.decode(ids[: k + 1], skip_special_tokens=True)) > target:
            probs = torch.softmax(logits[k].float()[digit_ids], dim=-1)
            return float((probs * torch.arange(1, 6, dtype=probs.dtype, device=probs.device)).sum())
    return None


class TransformersEngine:
    """Batched generation with a local Qwen-VL checkpoint."""

    batched = True

    def __init__(
        self,
        model_dir: str | Path,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        device: str = "auto",
        dtype: str = "auto",
        expected_score: bool = False,
        seed: int = 0,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.family: ModelFamily = check_checkpoint(self.model_dir)
        self.processor = load_processor(self.model_dir, min_pixels=min_pixels, max_pixels=max_pixels)
        self.processor.tokenizer.padding_side = "left"
        self.device = pick_device(device)
        model_cls = getattr(transformers, self.family.model_class)
        try:
            self.model = model_cls.from_pretrained(str(self.model_dir), dtype=pick_dtype(dtype, self.device))
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the model from {self.model_dir}: {exc}") from exc
        self.model.to(self.device).eval()
        # None: the checkpoint's own generation_config.max_new_tokens, else DEFAULT_MAX_NEW_TOKENS
        configured = getattr(self.model.generation_config, "max_new_tokens", None)
        self.max_new_tokens = int(max_new_tokens or configured or DEFAULT_MAX_NEW_TOKENS)
        self.temperature = temperature
        self.top_p = top_p
        self.expected_score = expected_score
        self.seed = seed
        tok = self.processor.tokenizer
        self._suppress = [i for i in tok.convert_tokens_to_ids(list(VISION_TOKENS)) if i is not None and i >= 0]
        self._digit_ids = score_digit_ids(tok)

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        return resized_size(self.processor, width, height)

    def decoding(self) -> dict[str, Any]:
        return {
            "engine": "transformers",
            "model": str(self.model_dir),
            "family": self.family.name,
            "greedy": self.temperature <= 0,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "min_pixels": int(self.processor.image_processor.size["shortest_edge"]),
            "max_pixels": int(self.processor.image_processor.size["longest_edge"]),
            "expected_score": self.expected_score,
            "dtype": str(self.model.dtype).replace("torch.", ""),
        }

    def render(self, conv: Conversation) -> str:
        """The prompt text of a conversation, through the processor's chat template."""
        return self.processor.apply_chat_template(conv.messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        if not conversations:
            return []
        texts = [self.render(c) for c in conversations]
        images = [img for c in conversations for img in c.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens,
            suppress_tokens=self._suppress or None,
            return_dict_in_generate=True,
            output_logits=self.expected_score,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        if self.temperature > 0:
            torch.manual_seed(self.seed)
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        try:
            out = self.model.generate(**inputs, **kwargs)
        except torch.cuda.OutOfMemoryError as exc:
            raise EngineError(f"out of GPU memory; lower --batch-size or --max-pixels ({exc})") from exc
        prompt_len = inputs["input_ids"].shape[1]
        new = out.sequences[:, prompt_len:]
        tok = self.processor.tokenizer
        results = []
        for b in range(new.shape[0]):
            ids = new[b].tolist()
            pad = tok.pad_token_id
            while ids and ids[-1] == pad:
                ids.pop()
            text = tok.decode(ids, skip_special_tokens=True)
            gen = Generation(
                text=text,
                n_prompt_tokens=int(inputs["attention_mask"][b].sum()),
                n_new_tokens=len(ids),
            )
            if self.expected_score and out.logits is not None:
                logits = [step[b] for step in out.logits]
                gen.expected_score = expected_score(tok, self._digit_ids, ids, text, logits)
            results.append(gen)
        return results

