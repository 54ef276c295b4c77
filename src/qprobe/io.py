"""Safe image loading for every command.

``load_image`` returns an RGB ``PIL.Image`` (8 bit), ``load_rgb`` a
``uint8`` array ``H x W x 3``. Both:

* apply the EXIF orientation, so pixels are as a viewer shows them;
* convert every mode (L, LA, P, PA, RGBA, CMYK, YCbCr, I;16*, I, F, 1) to RGB;
  alpha is composited over white, 16-bit and float data are scaled to 8 bit;
* enforce a configurable pixel limit (default 256 MP) *before* decoding, with
  an error that says how to raise it, instead of Pillow's decompression-bomb
  error;
* turn every failure (missing, empty, truncated, corrupt, not an image) into
  an :class:`~qprobe.errors.ImageLoadError` naming the file and the reason.
"""

from __future__ import annotations

import io as _io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from qprobe.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 256_000_000
"""Largest image (width x height) loaded unless the caller raises the limit."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_PIL_LIMIT = threading.Lock()
"""Held while Pillow's process-wide pixel limit and warning filters are swapped for one ``Image.open``:
without it, concurrent opens (``qprobe serve``'s threads) restored each other's values and left the
limit off for the whole process."""


@dataclass(frozen=True)
class ImageInfo:
    """Header facts, read without decoding the pixels."""

    width: int  # after EXIF orientation
    height: int
    mode: str
    format: str | None
    orientation: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def _open(source: ImageSource, max_pixels: int | None) -> Image.Image:
    """Open lazily (header only) with the pixel limit checked."""
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(name, "file not found")
        if path.is_dir():
            raise ImageLoadError(name, "is a directory, not an image file")
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(name, "file is empty (0 bytes)")
        fp: object = str(path)
    elif isinstance(source, bytes):
        if not source:
            raise ImageLoadError(name, "no image data (0 bytes)")
        fp = _io.BytesIO(source)
    else:
        raise TypeError(f"cannot open {type(source).__name__} as an image file")
    with _PIL_LIMIT:  # opening reads the header only: the lock is held for well under a millisecond
        old_limit = Image.MAX_IMAGE_PIXELS
        try:
            Image.MAX_IMAGE_PIXELS = None  # we check the limit ourselves, with a better message
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(fp)  # type: ignore[arg-type]
        except UnidentifiedImageError:
            raise ImageLoadError(name, "not a recognised image format (is it really an image?)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageLoadError(name, f"cannot read image header: {exc}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    w, h = img.size
    if w <= 0 or h <= 0:
        img.close()
        raise ImageLoadError(name, f"image has no pixels ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise ImageLoadError(
            name,
            f"image is {w}x{h} = {w * h / 1e6:.1f} MP, above the limit of {max_pixels / 1e6:.1f} MP "
            "(if you trust this file, raise the limit: max_pixels= in Python, --max-pixels for qprobe batch/serve)",
        )
    return img


def image_info(source: str | os.PathLike | bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Size, mode and orientation from the header, without decoding pixels."""
    img = _open(source, max_pixels)
    try:
        orientation = 1
        try:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # malformed EXIF must not make the file unreadable
            orientation = 1
        w, h = img.size
        if orientation in _TRANSPOSED_ORIENTATIONS:
            w, h = h, w
        return ImageInfo(w, h, img.mode, img.format, orientation)
    finally:
        img.close()


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            arr = (arr - lo) * scale
        elif mode == "I" and arr.max(initial=0) <= 255:
            pass  # 8-bit data stored in a 32-bit mode
        else:
            arr = arr / 257.0  # 16-bit → 8-bit
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), "RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    return img.convert("RGB")


def load_image(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Load any supported image as an upright 8-bit RGB ``PIL.Image``."""
    if isinstance(source, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(source) or source)
    if isinstance(source, np.ndarray):
        return Image.fromarray(as_rgb_array(source), "RGB")
    name = _describe(source)
    img = _open(source, max_pixels)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        img.close()
        msg = str(exc)
        if "truncated" in msg.lower():
            raise ImageLoadError(name, f"image data is truncated ({msg})") from None
        raise ImageLoadError(name, f"image data is corrupt ({msg})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - limit disabled above
        raise ImageLoadError(name, str(exc)) from None
    try:
        # in place: an upright image (the common case) is not copied
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # malformed EXIF: keep pixels as stored
        pass
    return _to_rgb(img)


def as_rgb_array(arr: np.ndarray) -> np.ndarray:
    """Normalise an array (H x W, H x W x 1/3/4; uint8/uint16/float/bool) to uint8 RGB.

    Floats in [0, 1] are scaled to [0, 255]; other integers are clipped to it. Raises ``ValueError``
    for an empty array, a non-numeric dtype or non-finite values.
    """
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H x W [x 1|3|4] image array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image array has no pixels ({a.shape[1]}x{a.shape[0]})")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"unsupported image array dtype {a.dtype} (use uint8, uint16, float in [0, 1] or [0, 255], or bool)")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:  # a mask: white where true
        return np.ascontiguousarray(a.astype(np.uint8) * 255)
    if a.dtype == np.uint16:
        return np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image array contains NaN or infinite values")
        scale = 255.0 if float(a.max()) <= 1.0 + 1e-6 else 1.0
        return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)


def load_rgb(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported image as a ``uint8`` array of shape ``H x W x 3``."""
    if isinstance(source, np.ndarray):
        return as_rgb_array(source)
    return np.asarray(load_image(source, max_pixels), dtype=np.uint8).copy()


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Files in ``folder`` whose suffix looks like an image, sorted (not validated)."""
    root = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and is_image_path(p))


def save_image(path: str | os.PathLike, image: np.ndarray | Image.Image, quality: int = 95) -> None:
    """Save atomically; JPEG with the given quality, PNG lossless."""
    from qprobe._fs import atomic_write_bytes

    img = image if isinstance(image, Image.Image) else Image.fromarray(as_rgb_array(image), "RGB")
    suffix = Path(path).suffix.lower()
    buf = _io.BytesIO()
    if suffix in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=quality, subsampling=0)
    elif suffix == ".png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format=Image.registered_extensions().get(suffix, "PNG"))
    atomic_write_bytes(path, buf.getvalue())
