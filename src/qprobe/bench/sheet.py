"""Contact sheet: thumbnails of manifest rows with their defect boxes and labels drawn.

For people to look at a benchmark (or any manifest with ``defects``):
each tile shows the image, every defect box in a colour of its type with
``type s<severity>`` written on it, a depth-of-field row's in-focus box
dashed in green, and a caption with the id, MOS and kind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from qprobe.errors import ImageLoadError
from qprobe.io import load_image, save_image
from qprobe.manifest import ManifestRow, read_manifest, resolve_path

_PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
]


def type_colour(name: str) -> tuple[int, int, int]:
    """A stable colour per defect type."""
    h = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:2], "little")
    return _PALETTE[h % len(_PALETTE)]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizing
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour: tuple[int, int, int], font
) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    x = max(2.0, min(x, draw.im.size[0] - (right - left) - 4))  # keep the label inside the tile
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour, font=font)


def _dashed_rect(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour, width: int, dash: int = 8
) -> None:
    x1, y1, x2, y2 = box
    for a, b, horizontal, fixed in (
        (x1, x2, True, y1),
        (x1, x2, True, y2),
        (y1, y2, False, x1),
        (y1, y2, False, x2),
    ):
        pos = a
        while pos < b:
            end = min(pos + dash, b)
            seg = (pos, fixed, end, fixed) if horizontal else (fixed, pos, fixed, end)
            draw.line(seg, fill=colour, width=width)
            pos += 2 * dash


def render_tile(
    row: ManifestRow, image: Image.Image, thumb: int, font_size: int, tile_h: int | None = None
) -> Image.Image:
    scale = thumb / float(max(row.width, row.height))
    tw, th = max(1, round(row.width * scale)), max(1, round(row.height * scale))
    img = image.copy()
    img.draft("RGB", (tw, th))
    img = img.convert("RGB").resize((tw, th), Image.Resampling.LANCZOS)
    caption_h = font_size * 2 + 10
    tile_h = tile_h or thumb
    tile = Image.new("RGB", (thumb, tile_h + caption_h), (24, 24, 24))
    ox, oy = (thumb - tw) // 2, (tile_h - th) // 2
    tile.paste(img, (ox, oy))
    draw = ImageDraw.Draw(tile)
    font = _font(font_size)
    lw = max(2, thumb // 200)
    focus = row.extra.get("focus_box")
    if focus:
        fx1, fy1, fx2, fy2 = (v * scale for v in focus)
        _dashed_rect(draw, (ox + fx1, oy + fy1, ox + fx2, oy + fy2), (60, 220, 90), lw)
        _label(draw, (ox + fx1 + 3, oy + fy1 + 3), "in focus (DoF)", (60, 220, 90), font)
    for d in row.defects:
        colour = type_colour(d.type)
        b = d.bbox.scale(scale)
        draw.rectangle((ox + b.x1, oy + b.y1, ox + b.x2, oy + b.y2), outline=colour, width=lw)
        sev = "" if d.severity is None else f" s{d.severity}"
        ty = oy + b.y1 - font_size - 4 if b.y1 > font_size + 4 else oy + b.y2 + 2
        _label(draw, (ox + b.x1, ty), f"{d.type}{sev}", colour, font)
    kind = row.extra.get("kind", "dof" if row.dof else ("degraded" if row.defects else "clean"))
    mos = "n/a" if row.mos is None else f"{row.mos:.2f}"
    draw.text((6, tile_h + 4), row.id, fill=(235, 235, 235), font=font)
    draw.text(
        (6, tile_h + 6 + font_size),
        f"MOS {mos}  {kind}  {row.width}x{row.height}",
        fill=(190, 190, 190),
        font=font,
    )
    return tile


def make_sheet(
    manifest: str | Path,
    out: str | Path,
    cols: int = 4,
    thumb: int = 480,
    max_items: int = 48,
    font_size: int | None = None,
) -> tuple[Path, int]:
    """Write a contact sheet of the first ``max_items`` rows; returns ``(path, tiles)``."""
    rows = read_manifest(manifest)[:max_items]
    if not rows:
        raise ValueError(f"{manifest}: the manifest has no rows to draw")
    fs = font_size or max(12, thumb // 28)
    tile_h = max(max(1, round(r.height * thumb / max(r.width, r.height))) for r in rows)
    tiles: list[Image.Image] = []
    for row in rows:
        try:
            img = load_image(resolve_path(row, manifest))
        except ImageLoadError as exc:
            img = Image.new("RGB", (row.width, row.height), (90, 0, 0))
            ImageDraw.Draw(img).text((10, 10), f"missing: {exc.reason}", fill=(255, 255, 255))
        tiles.append(render_tile(row, img, thumb, fs, tile_h))
    cols = max(1, min(cols, len(tiles)))
    nrows = -(-len(tiles) // cols)
    tw, th = tiles[0].size
    pad = 6
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, nrows * (th + pad) + pad), (0, 0, 0))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet.paste(tile, (pad + c * (tw + pad), pad + r * (th + pad)))
    out = Path(out)
    save_image(out, sheet, quality=92)
    return out, len(tiles)
