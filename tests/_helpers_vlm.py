"""Fixtures of the multimodal-LLM tests: tiny Qwen-VL checkpoints built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from qprobe.testing.tiny_vlm import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen25vl"))


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from qprobe.testing.tiny_vlm import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2vl"))


@pytest.fixture(scope="session")
def tiny_qwen3vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from qprobe.testing.tiny_vlm import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny-qwen3vl"))


def marked_image(width: int, height: int, box: tuple[int, int, int, int], seed: int = 0) -> "object":
    """A textured image with a pure red rectangle at ``box`` (original pixels)."""
    import numpy as np

    from conftest import make_texture

    img = make_texture(height, width, seed=seed)
    img[..., 0] = img[..., 0] // 2  # keep the texture away from pure red
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (255, 0, 0)
    return img
