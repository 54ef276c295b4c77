"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy & Bovik, TIP 2012).

36 NSS features (GGD fit of the MSCN coefficients and AGGD fits of their
four pairwise products, at full and half scale), scaled to [-1, 1] and fed
to an epsilon-SVR with an RBF kernel trained on LIVE. The SVR (libsvm text
format) and the feature scaling come from the ``brisque`` PyPI package 0.2.0
(Apache-2.0; ``qprobe/data/brisque_svm.txt`` and ``brisque_normalize.json``).
The RBF prediction ``sum_i coef_i * exp(-gamma * |sv_i - x|^2) - rho`` is
computed here in numpy: no libsvm, OpenCV or scikit-image at run time.
Lower is better (typically 0–100).

The features follow that package's ``BRISQUE.score`` (its SVR was trained
with them): scikit-image's BT.709 grey in [0, 1], MSCN with a 7x7 Gaussian
(sigma 7/6), zero padding and C = 1/255, AGGD shape by ``scipy.optimize.root``
from 0.2, half scale by OpenCV-style bicubic (a = -0.75, replicated border).
Verified against the package: see ``scripts/verify_baselines.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from qprobe.eval.baselines import BASELINES
from qprobe.eval.baselines._nss import SKIMAGE_LUMA
from qprobe.eval.baselines.base import Baseline


@dataclass(frozen=True)
class SVRModel:
    """An epsilon-SVR with RBF kernel read from a libsvm model file."""

    gamma: float
    rho: float
    coef: np.ndarray  # (n_sv,)
    sv: np.ndarray  # (n_sv, n_features)

    def predict(self, x: np.ndarray) -> float:
        d2 = np.sum((self.sv - x[None, :]) ** 2, axis=1)
        return float(self.coef @ np.exp(-self.gamma * d2) - self.rho)


def parse_libsvm_model(text: str, n_features: int) -> SVRModel:
    """Parse a libsvm text model (``svm_type epsilon_svr``, ``kernel_type rbf``); sparse rows allowed."""
    header: dict[str, str] = {}
    lines = text.splitlines()
    try:
        start = lines.index("SV") + 1
    except ValueError:
        raise ValueError("libsvm model has no 'SV' section") from None
    for line in lines[: start - 1]:
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(
            f"expected an epsilon_svr with rbf kernel, got {header.get('svm_type')}/{header.get('kernel_type')}"
        )
    rows = [ln.split() for ln in lines[start:] if ln.strip()]
    coef = np.array([float(r[0]) for r in rows])
    sv = np.zeros((len(rows), n_features))
    for i, r in enumerate(rows):
        for item in r[1:]:
            idx, _, val = item.partition(":")
            sv[i, int(idx) - 1] = float(val)
    if "total_sv" in header and int(header["total_sv"]) != len(rows):
        raise ValueError(f"libsvm model declares {header['total_sv']} support vectors but has {len(rows)}")
    return SVRModel(gamma=float(header["gamma"]), rho=float(header["rho"].split()[0]), coef=coef, sv=sv)


@lru_cache(maxsize=1)
def model() -> tuple[SVRModel, np.ndarray, np.ndarray]:
    """The shipped SVR and the per-feature (min, max) scaling."""
    data = resources.files("qprobe.data")
    svr = parse_libsvm_model((data / "brisque_svm.txt").read_text(encoding="utf-8"), 36)
    norm = json.loads((data / "brisque_normalize.json").read_text(encoding="utf-8"))
    return svr, np.asarray(norm["min"], dtype=np.float64), np.asarray(norm["max"], dtype=np.float64)


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """``(alpha, mean, sigma_l, sigma_r)`` of an asymmetric generalized Gaussian (moment matching)."""
    from scipy.optimize import root
    from scipy.special import gamma

    x = np.ravel(x).astype(np.float64)
    left, right = x[x < 0], x[x >= 0]
    if len(left) == 0 or len(right) == 0:
        raise ValueError("degenerate coefficients (no values on one side): flat image?")
    sl = float(np.sqrt(np.mean(left * left)))
    sr = float(np.sqrt(np.mean(right * right)))
    if sr == 0:
        raise ValueError("degenerate coefficients (zero spread): flat image?")
    r_hat = float(np.mean(np.abs(x)) ** 2 / np.mean(x * x))
    g = sl / sr
    big_r = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2

    def phi(a: np.ndarray) -> np.ndarray:
        return gamma(2 / a) ** 2 / (gamma(1 / a) * gamma(3 / a)) - big_r

    alpha = float(root(phi, [0.2]).x[0])
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    mean = float((sr - sl) * k * gamma(2 / alpha) / gamma(1 / alpha))
    return alpha, mean, sl, sr


def mscn_direct(gray: np.ndarray, c: float = 1.0 / 255.0) -> np.ndarray:
    """MSCN by direct 2-D convolution (zero padding), summed as the reference does.

    The separable form differs by ~1e-12, which is enough to flip the sign
    of the (near-)zero coefficients of flat, clipped regions and so move the
    AGGD fit: the exact summation order matters for agreement.
    """
    from scipy.signal import convolve2d

    y, x = np.indices((7, 7)) - 3
    sig = 7.0 / 6.0
    k = 1.0 / (2.0 * np.pi * sig**2) * np.exp(-(x**2 + y**2) / (2.0 * sig**2))
    k = k / np.sum(k)
    mu = convolve2d(gray, k, "same")
    sigma = np.sqrt(np.abs(mu * mu - convolve2d(gray * gray, k, "same")))
    return (gray - mu) / (sigma + c)


def scale_features(gray: np.ndarray) -> list[float]:
    """The 18 features of one scale (grey image in [0, 1])."""
    m = mscn_direct(gray)
    a, _, sl, sr = aggd_fit(m)
    out = [a, (sl * sl + sr * sr) / 2.0]
    for pair in (
        m[:, :-1] * m[:, 1:],
        m[:-1, :] * m[1:, :],
        m[:-1, :-1] * m[1:, 1:],
        m[1:, :-1] * m[:-1, 1:],
    ):
        a, mu, sl, sr = aggd_fit(pair)
        out += [a, mu, sl * sl, sr * sr]
    return out


_CUBIC_HALF = np.array([-0.09375, 0.59375, 0.59375, -0.09375])
"""Bicubic (a = -0.75) weights at phase 0.5: the taps of an exact 2x downscale."""


def half_cubic(img: np.ndarray) -> np.ndarray:
    """0.5x bicubic resize as OpenCV ``INTER_CUBIC`` does it (no antialiasing, replicated border)."""

    def axis(x: np.ndarray, ax: int) -> np.ndarray:
        n = x.shape[ax]
        n_out = int(np.rint(n * 0.5))
        base = 2 * np.arange(n_out)
        out = 0.0
        for k, w in zip(range(-1, 3), _CUBIC_HALF):
            idx = np.clip(base + k, 0, n - 1)
            out = out + w * np.take(x, idx, axis=ax)
        return out

    return axis(axis(img.astype(np.float64), 0), 1)


def brisque_features(gray01: np.ndarray) -> np.ndarray:
    return np.array(scale_features(gray01) + scale_features(half_cubic(gray01)))


def brisque_gray(gray01: np.ndarray) -> float:
    """BRISQUE score of a grey image with values in [0, 1]."""
    h, w = gray01.shape
    if h < 16 or w < 16:
        raise ValueError(f"BRISQUE needs at least 16x16 pixels, got {w}x{h}")
    svr, lo, hi = model()
    f = brisque_features(gray01)
    x = -1.0 + 2.0 * (f - lo) / (hi - lo)
    return svr.predict(x)


@BASELINES.register(
    "brisque",
    higher_is_better=False,
    raw_range="~0..100 (lower is better)",
    needs_torch=False,
    reference="Mittal et al., IEEE TIP 2012; SVR from the brisque package 0.2.0",
)
class BRISQUE(Baseline):
    """BRISQUE with the LIVE-trained SVR shipped by the ``brisque`` package."""

    name = "brisque"
    center = 40.0
    width = 15.0

    def raw(self, rgb: np.ndarray) -> float:
        return brisque_gray(gray01(rgb))


def gray01(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's ``rgb2gray``: ``(rgb / 255) @ [0.2125, 0.7154, 0.0721]``, in that order.

    Computed exactly as the reference does: a different but equivalent
    order of operations changes values by ~1e-16, enough to flip MSCN signs
    in clipped flat regions (see :func:`mscn_direct`).
    """
    if rgb.ndim == 2:
        return rgb.astype(np.float64) / 255.0
    return (rgb[..., :3].astype(np.float64) / 255.0) @ np.asarray(SKIMAGE_LUMA, dtype=np.float64)
