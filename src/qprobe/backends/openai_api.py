"""``openai``: probing through any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted).

    vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000
    qprobe score photo.jpg --backend openai --model Qwen/Qwen2.5-VL-7B-Instruct \\
        --base-url http://127.0.0.1:8000/v1

Images are pre-resized with the model family's rule (``smart_resize``), so
the server's processor leaves them as sent and ``absolute`` boxes
(Qwen2.5-VL) refer to known pixels; ``--family qwen2_vl|qwen3_vl`` or
``--box-convention relative1000`` for models that use 0–1000 boxes. The API
key comes from ``api_key`` or the ``OPENAI_API_KEY`` environment variable;
nothing is contacted before the first image is scored.
"""

from __future__ import annotations

import os
from typing import Any

from qprobe.backends import BACKENDS
from qprobe.backends.vlm.backend import VLMBackend
from qprobe.backends.vlm.coords import CONVENTIONS, smart_resize
from qprobe.backends.vlm.families import FAMILIES, ModelFamily
from qprobe.backends.vlm.messages import Sizer
from qprobe.errors import ConfigError

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@BACKENDS.register(
    "openai",
    needs_torch=False,
    deterministic=False,
    description="any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted): --model NAME --base-url URL",
)
class OpenAIBackend(VLMBackend):
    """A served multimodal LLM as the prober."""

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        family: str = "qwen2_5_vl",
        box_convention: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = 1280 * 28 * 28,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        image_format: str = "png",
        native_tools: bool = False,
        **common: Any,
    ) -> None:
        if common.get("expected_score"):
            raise ConfigError("expected_score needs the model's logits: use the transformers backend")
        super().__init__(**common)
        if not model:
            raise ConfigError("the openai backend needs the served model name: pass --model NAME")
        if box_convention is not None and box_convention not in CONVENTIONS:
            raise ConfigError(f"box_convention must be one of {CONVENTIONS}, got {box_convention!r}")
        if image_format not in ("png", "jpeg"):
            raise ConfigError(f"image_format must be png or jpeg, got {image_format!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ConfigError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.family: ModelFamily = FAMILIES.get(family)
        self._convention = box_convention or self.family.box_convention
        self.min_pixels = min_pixels or self.family.default_min_pixels
        self.max_pixels = max_pixels or self.family.default_max_pixels
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.image_format = image_format
        self.native_tools = native_tools

    def _create_engine(self) -> Any:
        from qprobe.backends.vlm.openai_engine import OpenAIEngine

        return OpenAIEngine(
            self.base_url,
            self.model,
            api_key=self.api_key,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            image_format=self.image_format,
            native_tools=self.native_tools,
        )

    @property
    def convention(self) -> str:
        return self._convention

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        return smart_resize(width, height, self.family.factor, self.min_pixels, self.max_pixels)

    def sizer(self) -> Sizer | None:
        return self.model_size
