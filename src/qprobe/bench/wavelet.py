"""Wavelet structure/texture decoupling (2-level 2-D DWT, PyWavelets).

*Structure* is the image rebuilt from the level-2 approximation alone (a
smooth low-pass); *texture* is what the detail sub-bands carry. The texture
energy map — per 4x4 block, the summed squared detail coefficients of both
levels — is what region selection ranks: degradations are injected where
there is texture to damage (flat sky hides blur and shows nothing).
"""

from __future__ import annotations

import numpy as np
import pywt

DEFAULT_WAVELET = "haar"
"""For the energy map: orthonormal, exact 2x2 support, fastest."""
STRUCTURE_WAVELET = "bior2.2"
"""For the structure image: a symmetric, smooth wavelet (Haar would give 4x4 steps)."""
DEFAULT_LEVELS = 2


def _pad_to(gray: np.ndarray, multiple: int) -> np.ndarray:
    h, w = gray.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        gray = np.pad(gray, ((0, ph), (0, pw)), mode="symmetric")
    return gray


def decompose(
    gray: np.ndarray, levels: int = DEFAULT_LEVELS, wavelet: str = STRUCTURE_WAVELET
) -> tuple[np.ndarray, np.ndarray]:
    """Split a 2-D float image into ``(structure, texture)``, each of the input's shape."""
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {g.shape}")
    h, w = g.shape
    coeffs = pywt.wavedec2(_pad_to(g, 2**levels), wavelet, level=levels, mode="symmetric")
    low_only = [coeffs[0]] + [tuple(np.zeros_like(d) for d in detail) for detail in coeffs[1:]]
    structure = pywt.waverec2(low_only, wavelet, mode="symmetric")[:h, :w].astype(np.float32)
    return structure, g - structure


def texture_energy(
    gray_float: np.ndarray, levels: int = DEFAULT_LEVELS, wavelet: str = DEFAULT_WAVELET
) -> np.ndarray:
    """High-pass energy per ``2**levels`` square block of a 2-D float image.

    Returns a map of shape ``(ceil(H / 2**levels), ceil(W / 2**levels))``:
    cell ``(i, j)`` holds the squared detail coefficients (all levels and
    orientations) over the block whose top-left pixel is ``(i·2**levels,
    j·2**levels)``, per pixel (units: the input's, squared). Edges are padded
    symmetrically to a multiple of the block size.
    """
    g = np.asarray(gray_float, dtype=np.float32)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {g.shape}")
    block = 2**levels
    coeffs = pywt.wavedec2(_pad_to(g, block), wavelet, level=levels)
    out_h, out_w = coeffs[0].shape
    energy = np.zeros((out_h, out_w), dtype=np.float32)
    for lvl, detail in enumerate(coeffs[1:]):  # coarsest level first
        e = sum(np.square(d, dtype=np.float32) for d in detail)
        f = 2**lvl  # coefficients per output cell along each axis
        e = e[: out_h * f, : out_w * f].reshape(out_h, f, out_w, f).sum(axis=(1, 3))
        energy += e
    return energy / np.float32(block * block)
