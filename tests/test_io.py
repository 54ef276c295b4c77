"""The safe loader on every kind of bad and unusual input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qprobe.errors import ImageLoadError
from qprobe.io import image_info, list_images, load_rgb, save_image

from conftest import make_texture


def _jpeg_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """Write the foundation issue's bad/odd inputs; return name -> expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = make_texture(96, 128, seed=1)
    good = _jpeg_bytes(arr)
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (1, 1), (10, 20, 30)).save(folder / "one_pixel.png")
    g16 = (np.linspace(0, 65535, 96 * 128).reshape(96, 128)).astype(np.uint16)
    Image.fromarray(g16).save(folder / "gray16.png")
    Image.fromarray(arr).convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    rgba = np.dstack([arr, np.full(arr.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.fromarray(arr).save(folder / "rotated.jpg", quality=92, exif=exif.tobytes())
    return {
        "truncated.jpg": "error",
        "empty.jpg": "error",
        "text.jpg": "error",
        "one_pixel.png": "ok",
        "gray16.png": "ok",
        "cmyk.jpg": "ok",
        "rgba.png": "ok",
        "rotated.jpg": "ok",
    }


def test_bad_and_odd_inputs(tmp_path):
    expected = write_bad_inputs(tmp_path)
    for name, outcome in expected.items():
        path = tmp_path / name
        if outcome == "error":
            with pytest.raises(ImageLoadError) as info:
                load_rgb(path)
            assert name in str(info.value)
        else:
            arr = load_rgb(path)
            assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


def test_specific_messages(tmp_path):
    write_bad_inputs(tmp_path)
    with pytest.raises(ImageLoadError, match="empty"):
        load_rgb(tmp_path / "empty.jpg")
    with pytest.raises(ImageLoadError, match="not a recognised image"):
        load_rgb(tmp_path / "text.jpg")
    with pytest.raises(ImageLoadError, match="truncated|corrupt"):
        load_rgb(tmp_path / "truncated.jpg")
    with pytest.raises(ImageLoadError, match="not found"):
        load_rgb(tmp_path / "missing.png")


def test_exif_rotation_and_16bit(tmp_path):
    write_bad_inputs(tmp_path)
    rot = load_rgb(tmp_path / "rotated.jpg")
    assert rot.shape[:2] == (128, 96)  # stored 96x128 (HxW), displayed rotated
    info = image_info(tmp_path / "rotated.jpg")
    assert (info.width, info.height, info.orientation) == (96, 128, 6)
    g = load_rgb(tmp_path / "gray16.png")
    assert g[0, 0, 0] == 0 and g[-1, -1, 0] == 255  # full 16-bit range mapped to 8 bit
    rgba = load_rgb(tmp_path / "rgba.png")
    assert rgba.mean() > make_texture(96, 128, seed=1).mean()  # composited over white


def test_pixel_limit(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="above the limit"):
        load_rgb(tmp_path / "big.png", max_pixels=50_000)
    assert load_rgb(tmp_path / "big.png", max_pixels=60_000).shape == (200, 300, 3)


def test_decompression_bomb_header_refused_without_decoding(tmp_path):
    # A PNG header claiming 60000 x 60000 pixels (3.6 GP): refused from the header.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(ImageLoadError, match="above the limit"):
        load_rgb(tmp_path / "bomb.png")



def test_concurrent_opens_leave_pillows_global_limit_alone(tmp_path):
    """Reading headers from many threads at once (the HTTP service) must not switch Pillow's bomb check off."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "small.png"
    Image.new("RGB", (64, 48)).save(path)
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)

    def read(_: int) -> None:
        for _ in range(200):
            assert image_info(path).width == 64

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, range(8)))
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters


def test_odd_arrays_are_refused_or_converted_with_reason():
    """Arrays get the same care as files: no silent garbage from NaNs, empty or non-numeric arrays."""
    for arr, reason in [
        (np.full((30, 40, 3), np.nan, np.float32), "NaN or infinite"),
        (np.where(np.ones((30, 40, 3), bool), np.inf, 0.5), "NaN or infinite"),
        (np.zeros((0, 40, 3), np.uint8), "no pixels"),
        (np.zeros((30, 40, 3), object), "unsupported image array dtype"),
        (np.zeros((30, 40, 3), complex), "unsupported image array dtype"),
    ]:
        with pytest.raises(ValueError, match=reason):
            load_rgb(arr)
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    out = load_rgb(mask)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3) and out[1, 2].tolist() == [255] * 3 and out.sum() == 765
    assert load_rgb(np.full((2, 2, 3), 0.5, np.float32)).max() == 128  # floats in [0, 1] scale to [0, 255]

def test_save_and_list(tmp_path):
    arr = make_texture(64, 80)
    save_image(tmp_path / "a" / "x.png", arr)
    save_image(tmp_path / "a" / "y.jpg", arr)
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["x.png", "y.jpg"]
    assert np.array_equal(load_rgb(tmp_path / "a" / "x.png"), arr)
    assert not list(tmp_path.glob("a/.*tmp"))
