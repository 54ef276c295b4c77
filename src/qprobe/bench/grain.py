"""Sensor grain for synthetic depth of field: optical blur happens before the sensor, its noise after.

A real photo's defocused background is smooth *and grainy*: the lens blurs the
scene, then the sensor adds its noise everywhere. Blurring a finished photo
(as :func:`~qprobe.bench.dof.apply_dof` does) also blurs that grain away, and
a grain-free region inside a grainy photo is exactly what a digital blur or
smear leaves — the damage the benchmark labels. :func:`estimate_noise_sigma`
measures the photo's own grain and :func:`add_grain` puts back, per pixel,
the part of it the depth-of-field blur removed, so the negative looks like
a photo taken with that depth of field.

The estimate is Immerkær's ("Fast noise variance estimation", CVIU 1996):
the operator ``[1 −2 1]ᵀ[1 −2 1]`` cancels every linear gradient, and on
white noise of σ its mean absolute response is ``6 σ / sqrt(π / 2)``.
Texture inflates it, so it is taken per block and the photo's grain is a low
quantile of the block estimates (the flattest unclipped blocks).

Known limit: the grain is added to the blurred *8-bit* image and rounded
again, so grain well under half a grey level (σ ≲ 0.3, common in clean
wallpapers) mostly rounds away, where in a capture it would dither the
continuous signal before quantization; from σ ≈ 0.5 on it is put back at its
level (a test restores 1.5 grey levels).
"""

from __future__ import annotations

import math

import numpy as np

NOISE_BLOCK = 32
"""Side (pixels) of the blocks whose noise is estimated separately."""

NOISE_QUANTILE = 0.1
"""The photo's grain: this quantile of the per-block estimates (the flattest blocks)."""

_SCALE = math.sqrt(math.pi / 2.0) / 6.0


def _block_estimates(channel: np.ndarray, block: int, rows: int = 1024) -> np.ndarray:
    """Immerkær's σ per ``block`` x ``block`` block of one uint8 channel; NaN where a pixel clips (0, 255)."""
    h, w = channel.shape
    br, bc = (h - 2) // block, (w - 2) // block
    out = np.full((br, bc), np.nan, np.float32)
    step = max(1, rows // block) * block
    for r0 in range(0, br * block, step):
        r1 = min(br * block, r0 + step)
        a = channel[r0 : r1 + 2, : bc * block + 2].astype(np.float32)
        d = a[:-2] - 2.0 * a[1:-1] + a[2:]
        d = np.abs(d[:, :-2] - 2.0 * d[:, 1:-1] + d[:, 2:])
        n = (r1 - r0) // block
        est = d.reshape(n, block, bc, block).mean(axis=(1, 3)) * _SCALE
        core = channel[r0 + 1 : r1 + 1, 1 : bc * block + 1]
        clipped = ((core == 0) | (core == 255)).reshape(n, block, bc, block).any(axis=(1, 3))
        out[r0 // block : r0 // block + n] = np.where(clipped, np.nan, est)
    return out


def estimate_noise_sigma(
    image: np.ndarray, block: int = NOISE_BLOCK, quantile: float = NOISE_QUANTILE
) -> np.ndarray:
    """Per-channel σ (grey levels) of the photo's white grain: a low quantile of blockwise estimates.

    ``image``: uint8 H x W x 3. Returns float32 (3,); 0 for a channel with no
    usable block (too small, or clipped everywhere).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {img.dtype} {img.shape}")
    out = np.zeros(3, np.float32)
    for c in range(3):
        est = _block_estimates(img[..., c], block)
        est = est[np.isfinite(est)]
        if est.size:
            out[c] = float(np.quantile(est, quantile))
    return out


def removed_share(blur_sigma: np.ndarray) -> np.ndarray:
    """Share of white noise's variance a Gaussian blur of ``blur_sigma`` px removes (0 at no blur).

    A 2-D Gaussian of σ keeps ``Σ w² ≈ 1 / (4π σ²)`` of white noise's variance;
    ``1 / (1 + 4π σ²)`` follows that for σ ≳ 1 and is 1 (nothing removed) at σ = 0.
    """
    s = np.asarray(blur_sigma, dtype=np.float32)
    return 1.0 - 1.0 / (1.0 + np.float32(4.0 * math.pi) * s * s)


def add_grain(
    image: np.ndarray,
    blur_sigma: np.ndarray,
    noise_sigma: np.ndarray,
    rng: np.random.Generator,
    rows: int = 512,
) -> np.ndarray:
    """``image`` (uint8 H x W x 3, blurred) with the grain its blur removed put back, in place and returned.

    ``blur_sigma``: H x W, the blur each pixel got; ``noise_sigma``: (3,) the
    photo's grain (:func:`estimate_noise_sigma`). Each pixel gets Gaussian
    noise of ``noise_sigma · sqrt(removed_share(blur_sigma))`` per channel,
    ``rows`` rows at a time (bounded memory on 100 MP images); pixels with no
    blur are left exactly as they are.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    if blur_sigma.shape != (h, w):
        raise ValueError(f"blur map {blur_sigma.shape} for an image of {(h, w)}")
    sig = np.asarray(noise_sigma, dtype=np.float32).reshape(1, 1, 3)
    if not np.any(sig > 0):
        return img
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        amount = np.sqrt(removed_share(blur_sigma[r0:r1]))[..., None] * sig
        noise = rng.standard_normal((r1 - r0, w, 3), dtype=np.float32) * amount
        block = img[r0:r1].astype(np.float32) + noise
        img[r0:r1] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return img


__all__ = ["NOISE_BLOCK", "NOISE_QUANTILE", "add_grain", "estimate_noise_sigma", "removed_share"]
