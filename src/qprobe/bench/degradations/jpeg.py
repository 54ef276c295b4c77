"""JPEG blocking: the region is really re-encoded as a low-quality JPEG.

The patch (box plus an 8-pixel margin) goes through Pillow's libjpeg encoder
with 4:2:0 chroma subsampling at the severity's quality and is decoded again,
so block edges, mosquito noise and chroma bleeding are those of a real codec.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from . import DEGRADATIONS
from .base import Degradation, pick


@DEGRADATIONS.register("jpeg", family="compression", description="real JPEG re-encode at low quality")
@dataclass
class Jpeg(Degradation):
    name = "jpeg"
    family = "compression"

    quality: tuple[float, ...] = (30.0, 20.0, 12.0, 7.0, 3.0)
    """libjpeg quality (1–95), per severity."""

    def margin(self, severity: int) -> int:
        return 8

    def apply(self, patch: np.ndarray, severity: int, rng: np.random.Generator, **sampled: Any) -> np.ndarray:
        img = Image.fromarray(np.clip(np.rint(patch), 0, 255).astype(np.uint8), "RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(pick(self.quality, severity)), subsampling=2, optimize=False)
        buf.seek(0)
        with Image.open(buf) as dec:
            return np.asarray(dec.convert("RGB"), dtype=np.float32)
