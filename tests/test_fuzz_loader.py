"""Fuzzing the image loader and the LLM output parser with hypothesis.

Loader contract: for any bytes, ``load_rgb`` returns an ``H x W x 3`` uint8
array or raises :class:`ImageLoadError` — never another exception, never a
decompression bomb. Parser contract: ``parse_reply`` never raises and its
results respect the action grammar; format → parse round-trips.
"""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from qprobe.errors import ImageLoadError
from qprobe.io import image_info, load_rgb

from conftest import make_texture

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 4_000_000  # pixels: mutated headers may claim large sizes; keep decoding bounded


def _encode(fmt: str, arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    arr = make_texture(24, 32, seed=7)
    gray = arr[..., 0]
    return {
        "png": _encode("PNG", arr),
        "png16": _encode("PNG", (gray.astype(np.uint16) * 257)),
        "jpeg": _encode("JPEG", arr, quality=80),
        "jpeg_progressive": _encode("JPEG", arr, quality=80, progressive=True),
        "gif": _encode("GIF", arr),
        "bmp": _encode("BMP", arr),
        "tiff": _encode("TIFF", arr),
        "tiff_lzw": _encode("TIFF", arr, compression="tiff_lzw"),
        "webp": _encode("WEBP", arr, quality=80),
        "ppm": _encode("PPM", arr),
        "rgba_png": _encode("PNG", np.dstack([arr, gray])),
    }


SEEDS = _seeds()


def _check(data: bytes) -> None:
    try:
        out = load_rgb(data, max_pixels=LIMIT)
    except ImageLoadError as exc:
        assert exc.reason  # a message a user can act on
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] * out.shape[1] <= LIMIT


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_loader_on_random_bytes(data):
    _check(data)


@FUZZ
@given(mutated())
def test_loader_on_mutated_images(data):
    _check(data)


def _png_with_size(w: int, h: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@FUZZ
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_png_header_sizes_are_refused_or_rejected_cleanly(w, h):
    data = _png_with_size(w, h)  # 64 zero bytes of pixel data: enough only for the tiniest sizes
    try:
        out = load_rgb(data, max_pixels=LIMIT)
    except ImageLoadError as exc:
        assert w * h <= LIMIT or "above the limit" in exc.reason
        return
    assert out.shape == (h, w, 3)


def _bombs() -> dict[str, bytes]:
    """Tiny files whose headers claim huge images, one per format."""
    side = 50000  # 2.5 gigapixels
    gif = bytearray(SEEDS["gif"])
    gif[6:10] = struct.pack("<HH", side, side)  # logical screen size
    bmp = bytearray(SEEDS["bmp"])
    bmp[18:26] = struct.pack("<ii", side, side)  # BITMAPINFOHEADER width/height
    jpeg = bytearray(SEEDS["jpeg"])
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)  # SOF0 height/width
    tiff = _encode("TIFF", np.zeros((1, 1, 3), np.uint8))
    tiff = tiff.replace(struct.pack("<HHII", 256, 4, 1, 1), struct.pack("<HHII", 256, 4, 1, side))
    tiff = tiff.replace(struct.pack("<HHII", 257, 4, 1, 1), struct.pack("<HHII", 257, 4, 1, side))
    return {"png": _png_with_size(side, side), "gif": bytes(gif), "bmp": bytes(bmp), "jpeg": bytes(jpeg), "tiff": tiff}


@pytest.mark.parametrize("fmt", ["png", "gif", "bmp", "jpeg", "tiff"])
def test_decompression_bomb_headers_are_refused_before_decoding(fmt, tmp_path):
    data = _bombs()[fmt]
    assert len(data) < 10_000
    path = tmp_path / f"bomb.{fmt}"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(ImageLoadError, match="above the limit"):
            load_rgb(source)
    info = image_info(path, max_pixels=None)  # the header really claims gigapixels
    assert info.pixels > 1_000_000_000


# -- the LLM output parser ---------------------------------------------------------------------

FRAGMENTS = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "<|im_end|>", "```json\n", "```",
    '{"name": "zoom_in", "arguments": {"bbox_2d": ', '{"score": ', '"defects": [', '{"bbox_2d": [', '"type": "noise"',
    "]", "}", "[", "{", ",", ":", '"', "NaN", "Infinity", "-1e309", "1e309", "3.5", "0", "-5", "1000", "99999999999999999999",
    "null", "true", '"4.2"', "\n", " ", "zoom_in", "reasons", '"reasons": ["a"]',
]


def _parser():
    return pytest.importorskip("qprobe.agent.parsing")


def _frames():
    from qprobe.backends.vlm.coords import Frame

    return [Frame("absolute", (4000, 3000), (896, 672)), Frame("relative1000", (640, 480), (448, 336))]


def _check_reply(parsing, text: str) -> None:
    parsed = parsing.parse_reply(text)
    assert parsed.kind in ("zoom", "answer", "invalid")
    if parsed.kind == "answer":
        assert parsed.score is not None and math.isfinite(parsed.score) and 1.0 <= parsed.score <= 5.0
        for d in parsed.defects:
            assert len(d.bbox) == 4 and all(math.isfinite(v) for v in d.bbox)
    elif parsed.kind == "zoom":
        assert parsed.bbox is not None and all(math.isfinite(v) for v in parsed.bbox)
    else:
        assert parsed.error
    for frame in _frames():
        action = parsing.to_action(parsed, frame)
        box = getattr(action, "box", None)
        if box is not None:
            w, h = frame.original
            assert 0 <= box.x1 < box.x2 <= w and 0 <= box.y1 < box.y2 <= h


@FUZZ
@given(st.text(max_size=400))
def test_parser_never_raises_on_any_text(text):
    _check_reply(_parser(), text)


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_parser_on_tag_and_json_soup(text):
    _check_reply(_parser(), text)


box_values = st.integers(0, 1000)


@FUZZ
@given(st.tuples(box_values, box_values, box_values, box_values), st.text(max_size=40))
def test_zoom_format_parse_round_trip(values, thought):
    parsing = _parser()
    x1, y1, x2, y2 = values
    bbox = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    parsed = parsing.parse_reply(parsing.format_zoom(bbox, thought))
    assert parsed.kind == "zoom" and parsed.well_formed, parsed
    assert tuple(parsed.bbox) == tuple(float(v) for v in bbox)


@FUZZ
@given(
    st.floats(1.0, 5.0, allow_nan=False),
    st.lists(st.tuples(st.tuples(box_values, box_values, box_values, box_values),
                       st.sampled_from(["noise", "blur", "jpeg", "banding"])), max_size=3),
    st.lists(st.text(min_size=1, max_size=30), max_size=3),
)
def test_answer_format_parse_round_trip(score, defects, reasons):
    parsing = _parser()
    parsed = parsing.parse_reply(parsing.format_answer(score, defects, reasons))
    assert parsed.kind == "answer", parsed
    assert parsed.score == pytest.approx(round(score, 4), abs=1e-9)
    assert [d.type for d in parsed.defects] == [t for _, t in defects]
    assert [tuple(d.bbox) for d in parsed.defects] == [tuple(float(v) for v in b) for b, _ in defects]
