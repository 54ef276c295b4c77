"""Texture-rich region selection.

The texture energy of :func:`qprobe.bench.wavelet.texture_energy` is computed
on a down-sampled grey copy (long side ≤ ``analysis_side``; region search
needs no more), log-compressed, lightly smoothed and thresholded at a
percentile: the cells above it form the *texture-rich mask*, split into
8-connected components. A region is a box of a random area (log-uniform in
``[min_area, max_area]`` of the image) and aspect ratio, centred on a
high-energy cell of one component (drawn in proportion to energy) and accepted
when at least ``min_coverage`` of it lies on that one component and it does
not touch earlier regions. Boxes are integer pixels of the original image and
always lie inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from qprobe.bench.wavelet import DEFAULT_LEVELS, texture_energy
from qprobe.types import Box


@dataclass(frozen=True)
class TextureMap:
    """Texture energy of one image on a coarse grid, with its rich-region components."""

    energy: np.ndarray  # float32, cells; log-compressed, smoothed
    rich: np.ndarray  # bool, cells above the percentile threshold
    labels: np.ndarray  # int32 component id per cell (0 = not rich)
    n_components: int
    width: int  # original image size in pixels
    height: int

    @property
    def cell_w(self) -> float:
        return self.width / self.energy.shape[1]

    @property
    def cell_h(self) -> float:
        return self.height / self.energy.shape[0]

    def cells(self, box: Box) -> tuple[slice, slice]:
        """Cell index ranges covered by ``box`` (at least one cell each way)."""
        gh, gw = self.energy.shape
        c1 = min(gw - 1, int(box.x1 / self.cell_w))
        r1 = min(gh - 1, int(box.y1 / self.cell_h))
        c2 = max(c1 + 1, min(gw, int(math.ceil(box.x2 / self.cell_w))))
        r2 = max(r1 + 1, min(gh, int(math.ceil(box.y2 / self.cell_h))))
        return slice(r1, r2), slice(c1, c2)

    def mean_energy(self, box: Box) -> float:
        rs, cs = self.cells(box)
        return float(self.energy[rs, cs].mean())


@dataclass(frozen=True)
class Region:
    """A selected region: its box and how texture-rich it is."""

    box: Box
    area_frac: float
    coverage: float  # fraction of the box on its texture-rich component
    texture: float  # mean texture energy in the box relative to the image median (1 = median)


def texture_map(
    image: np.ndarray,
    analysis_side: int = 1024,
    percentile: float = 60.0,
    smooth_cells: int = 3,
    levels: int = DEFAULT_LEVELS,
) -> TextureMap:
    """Texture energy map and rich components of a ``uint8`` RGB image."""
    h, w = image.shape[:2]
    gray_img = Image.fromarray(image, "RGB").convert("L")
    factor = max(1, int(math.ceil(max(h, w) / float(analysis_side))))
    if factor > 1:
        gray_img = gray_img.reduce(factor)
    gray = np.asarray(gray_img, dtype=np.float32)
    energy = np.log1p(texture_energy(gray, levels=levels))
    if smooth_cells > 1 and min(energy.shape) >= smooth_cells:
        energy = ndimage.uniform_filter(energy, size=smooth_cells, mode="nearest")
    threshold = float(np.percentile(energy, percentile))
    rich = energy > threshold
    if not rich.any():  # a flat image: every cell is as good as another
        rich = np.ones_like(rich)
    labels, n = ndimage.label(rich, structure=np.ones((3, 3), dtype=bool))
    return TextureMap(energy.astype(np.float32), rich, labels.astype(np.int32), int(n), w, h)


def _box_of_size(cx: float, cy: float, bw: int, bh: int, width: int, height: int) -> Box:
    x1 = int(round(cx - bw / 2.0))
    y1 = int(round(cy - bh / 2.0))
    x1 = min(max(x1, 0), width - bw)
    y1 = min(max(y1, 0), height - bh)
    return Box(float(x1), float(y1), float(x1 + bw), float(y1 + bh))


def _draw_size(
    rng: np.random.Generator, width: int, height: int, min_area: float, max_area: float, max_aspect: float
) -> tuple[int, int]:
    total = float(width * height)
    area = math.exp(rng.uniform(math.log(min_area), math.log(max_area))) * total
    aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
    bw = min(float(width), math.sqrt(area * aspect))
    bh = min(float(height), area / max(bw, 1.0))
    bw = min(float(width), area / max(bh, 1.0))
    bw_i, bh_i = max(1, int(round(bw))), max(1, int(round(bh)))
    # Rounding may leave the band on tiny images: nudge the longer side back in.
    while bw_i * bh_i < min_area * total and (bw_i < width or bh_i < height):
        if (bw_i <= bh_i and bw_i < width) or bh_i >= height:
            bw_i += 1
        else:
            bh_i += 1
    while bw_i * bh_i > max_area * total and (bw_i > 1 or bh_i > 1):
        if bw_i >= bh_i:
            bw_i -= 1
        else:
            bh_i -= 1
    return bw_i, bh_i


def select_regions(
    tex: TextureMap,
    n: int,
    rng: np.random.Generator,
    min_area: float = 0.002,
    max_area: float = 0.05,
    max_aspect: float = 1.8,
    min_coverage: float = 0.5,
    gap: int = 8,
    exclude: tuple[Box, ...] = (),
    tries: int = 60,
) -> list[Region]:
    """Up to ``n`` non-touching texture-rich regions (fewer only if the image has no room)."""
    if not 0.0 < min_area <= max_area < 1.0:
        raise ValueError(f"need 0 < min_area <= max_area < 1, got {min_area}, {max_area}")
    width, height = tex.width, tex.height
    weights = np.where(tex.rich, np.exp(tex.energy - tex.energy.max()), 0.0).ravel()
    weights = weights / weights.sum()
    median = float(np.exp(np.median(tex.energy)))
    taken: list[Box] = list(exclude)
    regions: list[Region] = []
    for _ in range(n):
        best: tuple[float, Box] | None = None
        for _attempt in range(tries):
            bw, bh = _draw_size(rng, width, height, min_area, max_area, max_aspect)
            cell = int(rng.choice(weights.size, p=weights))
            r, c = divmod(cell, tex.energy.shape[1])
            cx = (c + rng.uniform(0.0, 1.0)) * tex.cell_w
            cy = (r + rng.uniform(0.0, 1.0)) * tex.cell_h
            box = _box_of_size(cx, cy, bw, bh, width, height)
            if any(box.intersection(t.pad(gap)) > 0 for t in taken):
                continue
            rs, cs = tex.cells(box)
            comp = int(tex.labels[r, c])
            coverage = float(np.mean(tex.labels[rs, cs] == comp)) if comp else 0.0
            if best is None or coverage > best[0]:
                best = (coverage, box)
            if coverage >= min_coverage:
                break
        if best is None:
            break  # no room left for a non-touching box
        coverage, box = best
        taken.append(box)
        regions.append(
            Region(
                box=box,
                area_frac=box.area / float(width * height),
                coverage=coverage,
                texture=float(np.exp(tex.mean_energy(box))) / max(median, 1e-6),
            )
        )
    return regions
