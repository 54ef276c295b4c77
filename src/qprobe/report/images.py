"""Image helpers for reports: load the original, downscale, crop, encode as data URLs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image

from qprobe.errors import ImageLoadError
from qprobe.io import DEFAULT_MAX_PIXELS, ImageSource, load_image
from qprobe.types import Box


@dataclass
class Original:
    """The full-resolution original of a card, or why it is missing."""

    image: Image.Image | None
    problem: str | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.image is None else self.image.size


def load_original(source: ImageSource | None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Original:
    if source is None:
        return Original(None, "no image path recorded")
    try:
        return Original(load_image(source, max_pixels=max_pixels))
    except (ImageLoadError, OSError, ValueError, TypeError) as exc:
        return Original(None, str(exc))


def fit(image: Image.Image, max_side: int) -> Image.Image:
    """Downscale (never upscale) so the long side is at most ``max_side``."""
    w, h = image.size
    scale = max_side / max(w, h)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def crop_box(image: Image.Image, box: Box) -> Image.Image | None:
    """The pixels under ``box`` (original coordinates), clamped; None if empty."""
    w, h = image.size
    x1, y1, x2, y2 = box.clip(w, h).to_int()
    x2, y2 = min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return None
    return image.crop((x1, y1, x2, y2))


def data_url(image: Image.Image, quality: int = 85) -> str:
    """A JPEG data URL of ``image`` (RGB)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
