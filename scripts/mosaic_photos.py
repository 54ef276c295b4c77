"""Very large test images from smaller photos: mosaics of native-resolution tiles (no resampling).

    python scripts/mosaic_photos.py PHOTOS OUT [--grid 4x4] [--tile 2560x1600] [--count 5] [--seed 5]

Each mosaic is a grid of tiles cut at random positions from randomly
ordered photos of PHOTOS (every photo at least ``--tile`` large), so its
pixels keep the photos' native detail: a 4 x 4 grid of 2560 x 1600 tiles is
a 10240 x 6400 (65 MP) JPEG (quality 95). The tile seams are the one
artificial structure. The README builds its 65 MP benchmark from the
held-out photos this way:

    python scripts/mosaic_photos.py heldout mosaics
    qprobe bench build --photos mosaics --out bench_mosaic --variants 4 --seed 41 --format jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def size_arg(text: str) -> tuple[int, int]:
    a, sep, b = text.lower().partition("x")
    if not sep or not a.isdigit() or not b.isdigit() or int(a) < 1 or int(b) < 1:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 2560x1600, not {text!r}")
    return int(a), int(b)


def mosaics(photos: list[Path], out: Path, grid: tuple[int, int], tile: tuple[int, int], count: int, seed: int) -> None:
    cols, rows = grid
    tw, th = tile
    images = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    usable = [im for im in images if im.shape[0] >= th and im.shape[1] >= tw]
    if not usable:
        raise SystemExit(f"no photo is at least {tw}x{th}")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n = cols * rows
    for k in range(count):
        canvas = np.zeros((rows * th, cols * tw, 3), np.uint8)
        order = np.concatenate([rng.permutation(len(usable)) for _ in range(-(-n // len(usable)))])[:n]
        for t, i in enumerate(order):
            im = usable[int(i)]
            y, x = int(rng.integers(0, im.shape[0] - th + 1)), int(rng.integers(0, im.shape[1] - tw + 1))
            r, c = divmod(t, cols)
            canvas[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = im[y : y + th, x : x + tw]
        path = out / f"mosaic{k}.jpg"
        Image.fromarray(canvas).save(path, quality=95)
        print(f"{path}: {canvas.shape[1]}x{canvas.shape[0]} from {len(set(order.tolist()))} photos")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--grid", type=size_arg, default=(4, 4), help="columns x rows")
    ap.add_argument("--tile", type=size_arg, default=(2560, 1600), help="tile width x height")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    mosaics(photos, args.out, args.grid, args.tile, args.count, args.seed)


if __name__ == "__main__":
    main()
