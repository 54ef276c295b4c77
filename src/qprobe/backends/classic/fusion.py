"""Fusing the global score and the found defects into one 1–5 score.

The classic backend's score mirrors the damage model of the benchmark's
documented proxy annotator (:mod:`qprobe.bench.labels`): each found defect
``i`` removes a share ``d_i`` of the headroom above 1, where ``d_i`` is the
annotator's damage of a region of that type, severity, area and position,
weighted by the detector's confidence::

    keep  = Π_i (1 − confidence_i · d_i)
    fused = 1 + (s_global − 1) · keep ** (alpha · unseen)

* ``s_global``: the quality regressor on the global view (calibrated to human
  MOS on CLIVE);
* ``unseen = 1 − view_scale²``: the share of the original's pixels the
  downscaled global view did not see. Zooms add information only where the
  global view lost it: on an image no larger than the view (CLIVE's 500-px
  photos) the regressor already saw every pixel at native resolution and
  found defects do not move the score; on a 4K photo (512-px view,
  ``unseen`` ≈ 0.98) they count fully. The defects are reported either way.
* ``alpha`` (≥ 0): how strongly found damage counts, fitted at training
  time on benchmark images scored by the full pipeline.

A photo with no defect found keeps its global score exactly, so zooming
into clean regions cannot move the score (the crop bias the paper warns
about). :data:`DEFAULT_WEIGHTS` is used when a weight file carries none.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from qprobe.types import Defect, clamp_score

if TYPE_CHECKING:
    from qprobe.bench.labels import ProxyAnnotator

DEFAULT_WEIGHTS: tuple[float, ...] = (1.0,)
"""``(alpha,)``."""


@lru_cache(maxsize=1)
def _families() -> dict[str, str]:
    from qprobe.bench.degradations import DEGRADATIONS

    return {name: str(DEGRADATIONS.metadata(name).get("family", name)) for name in DEGRADATIONS.list()}


@lru_cache(maxsize=1)
def _proxy() -> "ProxyAnnotator":
    from qprobe.bench.labels import ProxyAnnotator

    return ProxyAnnotator()


def keep_factor(defects: Sequence[Defect], image_size: tuple[int, int]) -> float:
    """Π (1 − confidence · damage): the share of quality headroom the found defects leave."""
    w, h = image_size
    if not defects or w <= 0 or h <= 0:
        return 1.0
    model = _proxy()
    fam = _families()
    keep = 1.0
    for d in defects:
        dmg = model.damage(d.bbox, fam.get(d.type, d.type), int(d.severity or 3), w, h)
        keep *= 1.0 - float(np.clip(d.confidence, 0.0, 1.0)) * dmg
    return float(keep)


def fuse(s_global: float, keep: float, weights: Sequence[float] = DEFAULT_WEIGHTS, unseen: float = 1.0) -> float:
    alpha = max(float(weights[0]) if len(weights) > 0 else 1.0, 0.0)
    exponent = alpha * min(max(float(unseen), 0.0), 1.0)
    if keep >= 1.0 or exponent <= 0.0:
        return clamp_score(float(s_global))
    return clamp_score(1.0 + (float(s_global) - 1.0) * max(keep, 1e-6) ** exponent)


def fit_fusion(
    s_global: np.ndarray,
    keep: np.ndarray,
    targets: np.ndarray,
    unseen: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[float, ...]:
    """``(alpha,)``: the weakest ``alpha`` whose Pearson correlation with ``targets`` is within one standard error of the best.

    * Correlation, not squared error: the global regressor is calibrated on
      CLIVE, and an offset between its scale and the targets' (pristine
      high-resolution photos score ≈ 3.5 on it, 4.6 in the benchmark's proxy
      MOS) would otherwise pull ``alpha`` towards 0 to keep scores near the
      offset targets, whatever the found damage explains.
    * One-standard-error rule (``n_boot`` bootstrap resamples of the images
      at the best ``alpha``): ``alpha`` also amplifies every false alarm, and
      the images it is fitted on are the detector's own training photos,
      where false alarms are rarer than on new photos; so among the values
      the data cannot tell apart, the weakest is taken. ``n_boot=0``: the
      best ``alpha``.

    The grid is ``[0, 4]`` in steps of 0.05; ties resolve to the smallest value.
    """
    s = np.asarray(s_global, dtype=np.float64)
    u = np.ones_like(s) if unseen is None else np.clip(np.asarray(unseen, dtype=np.float64), 0.0, 1.0)
    # keep ** (alpha * unseen) == (keep ** unseen) ** alpha
    k = np.clip(np.asarray(keep, dtype=np.float64), 1e-6, 1.0) ** u
    y = np.asarray(targets, dtype=np.float64)
    grid = np.linspace(0.0, 4.0, 81)
    preds = [np.clip(1.0 + (s - 1.0) * k**a, 1.0, 5.0) for a in grid]
    scores = np.round([_corr(p, y) for p in preds], 6)
    best = int(np.argmax(scores))
    if n_boot <= 0 or len(y) < 3:
        return (float(grid[best]),)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boot.append(_corr(preds[best][idx], y[idx]))
    se = float(np.std(boot))
    return (float(grid[int(np.argmax(scores >= scores[best] - se))]),)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    """The evaluation's PLCC; -1 where it is undefined (constant predictions)."""
    from qprobe.eval.metrics import plcc

    r = plcc(x, y)
    return r if np.isfinite(r) else -1.0
