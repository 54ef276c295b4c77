"""Image-only processors for Qwen-VL families that work without torchvision.

transformers' ``Qwen2_5_VLProcessor`` (and its Qwen2-VL / Qwen3-VL siblings)
insists on a video processor, which needs torchvision; without it the
processor cannot be built and ``AutoProcessor`` may silently hand back a bare
tokenizer (transformers issue #48558). qprobe only sends images, so each
family gets a subclass without the ``video_processor`` argument, backed by the
numpy/PIL image processor (``Qwen2VLImageProcessorPil``), and registered with
``AutoProcessor`` so that a folder saved with it loads back as the same type.

This module imports transformers: import it only on heavy code paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import (
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLProcessor,
    Qwen3VLConfig,
    Qwen3VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize

from qprobe.backends.vlm.families import ModelFamily, check_checkpoint
from qprobe.errors import MissingWeightsError


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` without the video processor (no torchvision needed)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without the video processor (no torchvision needed)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` without the video processor (no torchvision needed)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


IMAGE_ONLY_PROCESSORS: dict[str, type] = {
    "Qwen2VLProcessor": Qwen2VLImageOnlyProcessor,
    "Qwen2_5_VLProcessor": Qwen2_5_VLImageOnlyProcessor,
    "Qwen3VLProcessor": Qwen3VLImageOnlyProcessor,
}

for _config, _cls in (
    (Qwen2VLConfig, Qwen2VLImageOnlyProcessor),
    (Qwen2_5_VLConfig, Qwen2_5_VLImageOnlyProcessor),
    (Qwen3VLConfig, Qwen3VLImageOnlyProcessor),
):
    AutoProcessor.register(_config, _cls, exist_ok=True)


def _image_processor_settings(root: Path) -> dict[str, Any]:
    """The image-processor dict of a checkpoint (``preprocessor_config.json`` or nested in ``processor_config.json``)."""
    pre = root / "preprocessor_config.json"
    if pre.is_file():
        return dict(json.loads(pre.read_text(encoding="utf-8")))
    proc = root / "processor_config.json"
    if proc.is_file():
        data = json.loads(proc.read_text(encoding="utf-8"))
        if isinstance(data.get("image_processor"), dict):
            return dict(data["image_processor"])
    raise MissingWeightsError(f"{root} has no image-processor settings (preprocessor_config.json)")


def _chat_template(root: Path, tokenizer: Any) -> str:
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    js = root / "chat_template.json"
    if js.is_file():
        return str(json.loads(js.read_text(encoding="utf-8"))["chat_template"])
    template = getattr(tokenizer, "chat_template", None)
    if template:
        return str(template)
    raise MissingWeightsError(
        f"{root} has no chat template (chat_template.jinja / chat_template.json / tokenizer_config.json)"
    )


def build_image_processor(
    settings: dict[str, Any], family: ModelFamily, min_pixels: int | None = None, max_pixels: int | None = None
) -> Qwen2VLImageProcessorPil:
    """A PIL image processor from a checkpoint's settings, with pixel-budget overrides."""
    size = dict(settings.get("size") or {})
    lo = min_pixels or settings.get("min_pixels") or size.get("shortest_edge") or family.default_min_pixels
    hi = max_pixels or settings.get("max_pixels") or size.get("longest_edge") or family.default_max_pixels
    if lo > hi:
        raise ValueError(f"min_pixels {lo} is larger than max_pixels {hi}")
    kwargs = {
        k: settings[k]
        for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std", "resample")
        if k in settings
    }
    kwargs.setdefault("patch_size", family.patch_size)
    kwargs.setdefault("merge_size", family.merge_size)
    return Qwen2VLImageProcessorPil(min_pixels=int(lo), max_pixels=int(hi), **kwargs)


def load_processor(
    model_dir: str | Path, min_pixels: int | None = None, max_pixels: int | None = None
) -> Any:
    """The image-only processor of a local checkpoint, whatever processor class it was saved with."""
    root = Path(model_dir)
    family = check_checkpoint(root)
    tokenizer = AutoTokenizer.from_pretrained(str(root))
    image_processor = build_image_processor(_image_processor_settings(root), family, min_pixels, max_pixels)
    cls = IMAGE_ONLY_PROCESSORS[family.processor_base]
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=_chat_template(root, tokenizer))


def resized_size(processor: Any, width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of an image after the processor's ``smart_resize``."""
    ip = processor.image_processor
    factor = int(ip.patch_size) * int(ip.merge_size)
    h, w = smart_resize(
        height, width, factor=factor, min_pixels=int(ip.size["shortest_edge"]), max_pixels=int(ip.size["longest_edge"])
    )
    return int(w), int(h)
