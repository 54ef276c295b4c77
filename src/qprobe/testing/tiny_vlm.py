"""Tiny, randomly initialised Qwen2.5-VL, Qwen2-VL and Qwen3-VL checkpoints for CPU tests.

``build_tiny_qwen25vl(out_dir)`` / ``build_tiny_qwen2vl(out_dir)`` /
``build_tiny_qwen3vl(out_dir)`` write a
complete local checkpoint — config, safetensors weights, a byte-level BPE
tokenizer trained here with ``tokenizers`` (with the Qwen-VL special tokens),
the Qwen-VL chat template with tool support, and an image-only processor that
works without torchvision — and return the folder. It loads back with
``from_pretrained`` like a real checkpoint, and through qprobe's
``transformers`` backend with ``--model DIR``. Nothing is downloaded.

Sizes: text hidden 64, 2 layers, 4 heads / 2 KV heads, mrope sections
[2, 3, 3]; vision depth 2, hidden 32; images resized to at most 224x224
pixels (64 visual tokens; 256x256 with Qwen3-VL's 16-px patches);
``generation_config.max_new_tokens`` is 16, since a random model never
stops by itself. A build takes a few seconds; the result is deterministic
given ``seed``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

QWEN_VL_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen-VL special tokens, in the order of the real vocabulary."""

QWEN_ADDED_TOKENS = ("<tool_call>", "</tool_call>")
"""Added (not special) tokens: kept when decoding with ``skip_special_tokens``."""

TINY_MAX_NEW_TOKENS = 16
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 224 * 224

_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def chat_template() -> str:
    """The Qwen-VL chat template (with tool support) the tiny models ship with."""
    return resources.files("qprobe").joinpath("prompts/qwen_vl_tools.jinja").read_text(encoding="utf-8")


def _corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the probing protocol and prompts."""
    from qprobe.agent import prompts

    lines = [
        '<think>The overview looks sharp but the sky may hold banding.</think>'
        '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [112, 40, 220, 168]}}</tool_call>',
        '<think>The crop shows fine texture and no artifacts.</think>'
        '<answer>{"score": 3.42, "defects": [{"bbox_2d": [10, 20, 300, 400], "type": "noise"}]}</answer>',
        "<tool_response>Zoomed region [x1, y1, x2, y2] of the original image.</tool_response>",
        "blur motion noise jpeg blocking ringing banding pixelation haze contrast smearing clean depth of field",
        "0 1 2 3 4 5 6 7 8 9 10 100 1000 0.5 1.25 2.75 4.8",
    ]
    lines.extend(prompts.corpus_texts())
    return lines * 4


def _train_tokenizer(vocab_size: int = 1200) -> Any:
    """A byte-level BPE trained here, wrapped as a ``Qwen2Tokenizer`` with the Qwen-VL tokens."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_VL_SPECIAL_TOKENS) + list(QWEN_ADDED_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    qt = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    qt.add_special_tokens({"additional_special_tokens": list(QWEN_VL_SPECIAL_TOKENS[1:])})
    qt.add_tokens(list(QWEN_ADDED_TOKENS))
    qt.chat_template = chat_template()
    return qt


def _text_config(tokenizer: Any) -> dict[str, Any]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )


def _vision_token_ids(tokenizer: Any) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def _save(model: Any, processor: Any, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.do_sample = False
    model.generation_config.max_new_tokens = TINY_MAX_NEW_TOKENS  # a random model never stops by itself
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return out_dir


def _processor(family_base: str, tokenizer: Any, patch_size: int = 14) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from qprobe.backends.vlm.processor import IMAGE_ONLY_PROCESSORS

    scale = (patch_size / 14) ** 2
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=int(TINY_MIN_PIXELS * scale), max_pixels=int(TINY_MAX_PIXELS * scale), patch_size=patch_size
    )
    return IMAGE_ONLY_PROCESSORS[family_base](
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


def build_tiny_qwen25vl(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL checkpoint (model + tokenizer + processor) to ``out_dir``."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            fullatt_block_indexes=[1],
            window_size=112,
        ),
        **_vision_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    return _save(model, _processor("Qwen2_5_VLProcessor", tokenizer), out_dir)


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2-VL checkpoint (model + tokenizer + processor) to ``out_dir``."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer()
    config = Qwen2VLConfig(
        text_config=_text_config(tokenizer),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2),
        **_vision_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    return _save(model, _processor("Qwen2VLProcessor", tokenizer), out_dir)


def build_tiny_qwen3vl(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (model + tokenizer + processor) to ``out_dir``."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer()
    text = dict(_text_config(tokenizer), head_dim=16)
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            num_position_embeddings=256,
            deepstack_visual_indexes=[1],
        ),
        **_vision_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    return _save(model, _processor("Qwen3VLProcessor", tokenizer, patch_size=16), out_dir)
