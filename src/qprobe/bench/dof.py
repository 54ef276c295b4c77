"""Synthetic depth of field: a hard negative that must *not* read as damage.

A depth proxy is 0 on the in-focus subject (its box padded by a focus band)
and grows smoothly (smoothstep) with the distance from it, reaching 1 at
``falloff`` x the image diagonal. The blur radius is ``max_sigma x depth``,
so blur is a non-decreasing function of the proxy. Rendering uses a blur
stack: ``n_layers`` copies blurred with evenly spaced sigmas (layer 0 is the
original), each computed on a down-sampled copy and up-sampled (cost nearly
independent of sigma and image-size linear), and every pixel interpolates linearly between the two
layers that bracket its sigma. Pixels of depth 0 take layer 0 exactly: the
subject is bit-identical to the input. With ``grain`` (the photo's own sensor
noise, :func:`~qprobe.bench.grain.estimate_noise_sigma`), the noise the blur
removed is put back (:mod:`~qprobe.bench.grain`): a lens blurs the scene
before the sensor adds its grain, so real defocus is smooth but not grain-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from qprobe.bench.grain import add_grain
from qprobe.types import Box


@dataclass(frozen=True)
class DofResult:
    image: np.ndarray  # uint8 H x W x 3
    focus_box: Box  # the in-focus (unchanged) area: subject box + focus band, clipped
    max_sigma: float


def depth_proxy(
    height: int, width: int, subject: Box, falloff: float = 0.35, focus_band: float = 0.02
) -> np.ndarray:
    """Depth proxy in ``[0, 1]`` (float32 ``H x W``): 0 on the subject, smooth growth away from it."""
    diag = math.hypot(width, height)
    focus = subject.pad(focus_band * diag).clip(width, height)
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    dx = np.maximum(np.maximum(focus.x1 - xs, xs - focus.x2), 0.0)
    dy = np.maximum(np.maximum(focus.y1 - ys, ys - focus.y2), 0.0)
    dist = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    t = np.clip(dist / np.float32(max(falloff * diag, 1.0)), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _blurred(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian-like blur of about ``sigma`` px, computed on a down-sampled copy.

    Box-averaging by ``f`` and bilinear up-sampling blur by about ``f/2`` px
    themselves; the rest is a Gaussian on the small copy. Blurrier layers use
    larger ``f``, so the cost hardly grows with sigma.
    """
    w, h = img.size
    factor = max(1, min(int(sigma / 1.5) + 2, min(w, h) // 16))
    small = img.reduce(factor) if factor > 1 else img
    own = (factor / 2.0) ** 2 if factor > 1 else 0.0
    residual = math.sqrt(max(sigma**2 - own, 0.09)) / factor
    small = small.filter(ImageFilter.GaussianBlur(residual))
    return small.resize(img.size, Image.Resampling.BILINEAR) if factor > 1 else small


def layer_masks(depth: np.ndarray, n_layers: int) -> list[np.ndarray]:
    """Compositing weights: ``m_k = clip(k + 1 − depth·(K − 1), 0, 1)`` for k = 0 .. K−2.

    Compositing ``acc_k = m_k·L_k + (1 − m_k)·acc_(k+1)`` from the blurriest
    layer down gives, at a pixel with ``pos = depth·(K − 1)`` in ``[j, j + 1)``,
    exactly ``(1 − t)·L_j + t·L_(j+1)`` with ``t = pos − j``.
    """
    pos = depth * np.float32(n_layers - 1)
    return [np.clip(np.float32(k + 1) - pos, 0.0, 1.0) for k in range(n_layers - 1)]


def apply_dof(
    image: np.ndarray,
    subject: Box,
    *,
    max_sigma: float = 6.0,
    falloff: float = 0.35,
    focus_band: float = 0.02,
    n_layers: int = 6,
    mask_scale: int = 4,
    grain: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> DofResult:
    """Render synthetic depth of field around ``subject`` on a ``uint8`` RGB image.

    The depth proxy is smooth, so the compositing masks are computed on a grid
    ``mask_scale`` times coarser and up-sampled bilinearly; the focus area is
    then copied back from the input so that it is bit-identical. ``grain``
    ((3,) grey levels per channel) puts back, per pixel, the share of that
    sensor noise the pixel's blur removed, drawn from ``rng`` (required with it).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {img.dtype} {img.shape}")
    if n_layers < 2 or max_sigma <= 0:
        raise ValueError("need n_layers >= 2 and max_sigma > 0")
    if grain is not None and rng is None:
        raise ValueError("grain needs an rng")
    h, w = img.shape[:2]
    diag = math.hypot(w, h)
    focus = subject.pad(focus_band * diag).clip(w, h)
    s = max(1, min(mask_scale, min(h, w) // 8))
    sh, sw = -(-h // s), -(-w // s)
    small_depth = depth_proxy(sh, sw, subject.scale(sw / w, sh / h), falloff, focus_band)
    pil = Image.fromarray(img, "RGB")
    sigmas = [max_sigma * k / (n_layers - 1) for k in range(n_layers)]
    acc = _blurred(pil, sigmas[-1])
    for k in range(n_layers - 2, -1, -1):
        layer = pil if k == 0 else _blurred(pil, sigmas[k])
        m = layer_masks(small_depth, n_layers)[k]
        mask = Image.fromarray(np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8), "L")
        if s > 1:
            mask = mask.resize((w, h), Image.Resampling.BILINEAR)
        acc = Image.composite(layer, acc, mask)
    out = np.array(acc, dtype=np.uint8)
    if grain is not None:
        depth = small_depth
        if s > 1:
            depth = np.asarray(Image.fromarray(small_depth, "F").resize((w, h), Image.Resampling.BILINEAR))
        add_grain(out, depth * np.float32(max_sigma), np.asarray(grain, np.float32), rng)
    fx1, fy1 = int(math.ceil(focus.x1)), int(math.ceil(focus.y1))
    fx2, fy2 = int(math.floor(focus.x2)), int(math.floor(focus.y2))
    out[fy1:fy2, fx1:fx2] = img[fy1:fy2, fx1:fx2]
    return DofResult(out, Box(float(fx1), float(fy1), float(fx2), float(fy2)), max_sigma)
