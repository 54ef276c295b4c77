"""``transformers``: probing with a local multimodal LLM (Qwen2.5-VL, Qwen2-VL, Qwen3-VL).

Point it at any local checkpoint folder (``--model DIR``): the family, hence
the box convention, comes from the checkpoint's ``config.json``. Works
without torchvision (image-only processors), batches ``assess_many``
episodes into shared forward passes, and decodes greedily by default so the
same image gets the same score. An incomplete folder fails at construction
with :class:`~qprobe.errors.MissingWeightsError` naming what is missing;
the model itself loads on first use.

    qprobe score photo.jpg --backend transformers --model ~/models/Qwen2.5-VL-7B-Instruct
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qprobe.backends import BACKENDS
from qprobe.backends.vlm.backend import VLMBackend
from qprobe.backends.vlm.coords import smart_resize
from qprobe.backends.vlm.families import check_checkpoint
from qprobe.errors import ConfigError


@BACKENDS.register(
    "transformers",
    needs_torch=True,
    deterministic=True,
    description="local Qwen-VL checkpoint (--model DIR) probing with transformers",
)
class TransformersBackend(VLMBackend):
    """A local Qwen-VL checkpoint as the prober."""

    name = "transformers"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        device: str = "auto",
        dtype: str = "auto",
        seed: int = 0,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if model is None:
            raise ConfigError(
                "the transformers backend needs a local checkpoint: pass --model DIR "
                "(e.g. a folder downloaded with `huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --local-dir DIR`)"
            )
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model_dir = Path(model).expanduser()
        self.family = check_checkpoint(self.model_dir)
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.device = device
        self.dtype = dtype
        self.seed = seed

    def _create_engine(self) -> Any:
        from qprobe.backends.vlm.hf_engine import TransformersEngine

        return TransformersEngine(
            self.model_dir,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            device=self.device,
            dtype=self.dtype,
            expected_score=self.expected_score,
            seed=self.seed,
        )

    @property
    def convention(self) -> str:
        return self.family.box_convention

    def model_size(self, width: int, height: int) -> tuple[int, int]:
        if self.family.box_convention != "absolute":
            return smart_resize(width, height, self.family.factor)  # unused by relative conventions
        return self.engine.model_size(width, height)  # type: ignore[attr-defined]
