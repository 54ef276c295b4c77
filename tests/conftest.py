"""Shared fixtures: paths to ../shared/data and small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

# Spinning OpenMP threads make torch 10-40x slower on a busy 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Tests never reach a model hub: any accidental download fails loudly instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def photos_dir(shared_data: Path) -> Path:
    return shared_data / "photos" / "images"


@pytest.fixture(scope="session")
def clive_dir(shared_data: Path) -> Path:
    return shared_data / "clive"


def make_texture(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A deterministic natural-ish RGB image: smooth gradients + textured patches."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            120 + 60 * np.sin(xx / 97.0) * np.cos(yy / 71.0),
            110 + 50 * np.cos(xx / 53.0 + 1.0),
            100 + 40 * np.sin(yy / 61.0 + 2.0),
        ],
        axis=2,
    )
    noise = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    tex = np.kron(noise, np.ones((4, 4, 1), dtype=np.float32))[:h, :w] * 18.0
    mask = ((xx // 160 + yy // 120) % 2 == 0)[..., None]
    img = base + tex * mask + rng.normal(0, 2.0, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def texture_image() -> np.ndarray:
    return make_texture()
