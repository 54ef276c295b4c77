"""Helpers of the multimodal-LLM tests: tiny Qwen-VL checkpoints built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_texture

_BUILT: dict[str, Path] = {}


def tiny_model_dir(family: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint of ``family`` (qwen2_5_vl, qwen2_vl, qwen3_vl), built once per test session."""
    pytest.importorskip("transformers")
    if family not in _BUILT:
        from qprobe.testing import tiny_vlm

        build = {
            "qwen2_5_vl": tiny_vlm.build_tiny_qwen25vl,
            "qwen2_vl": tiny_vlm.build_tiny_qwen2vl,
            "qwen3_vl": tiny_vlm.build_tiny_qwen3vl,
        }[family]
        _BUILT[family] = build(tmp_path_factory.mktemp(f"tiny-{family}"))
    return _BUILT[family]


def marked_image(width: int, height: int, box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """A textured image with a pure red rectangle at ``box`` (original pixels)."""
    img = make_texture(height, width, seed=seed)
    img[..., 0] = img[..., 0] // 2  # keep the texture away from pure red
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (255, 0, 0)
    return img
