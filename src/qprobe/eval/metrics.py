"""Correlation metrics of IQA evaluation, with bootstrap confidence intervals.

Every metric is a plain function ``(pred, mos) -> float`` registered in
:data:`METRICS`; :func:`compute_metrics` is the corpus aggregation used by the
runner. Predictions that failed (``None`` or NaN) are **never substituted**:
they are counted in ``n_failed`` and the metrics are computed over the
successful ones only.

The "fitted" metrics follow the VQEG recipe: predictions are first mapped
onto the MOS scale by the 4-parameter logistic

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

fitted by least squares, then PLCC / RMSE are computed between ``f(pred)``
and MOS. (SRCC/KRCC are rank statistics: the monotone fit does not change
them, so they are reported once.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qprobe.registry import Registry

MetricFn = Callable[[np.ndarray, np.ndarray], float]

METRICS: Registry[MetricFn] = Registry("metric")

MIN_POINTS = 3
"""Fewest successful predictions for which correlations are computed."""


def list_metrics(pattern: str = "*") -> list[str]:
    return METRICS.list(pattern)


def get_metric(name: str) -> MetricFn:
    return METRICS.get(name)


# -- the 4-parameter logistic -------------------------------------------------


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic, monotone in ``x`` (increasing iff ``b1 > b2``)."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -60.0, 60.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


@dataclass(frozen=True)
class LogisticFit:
    """A fitted map of predictions onto MOS.

    ``params`` are ``b1..b4`` of :func:`logistic4` when the fit converged;
    otherwise ``converged`` is False and ``linear`` holds the (slope,
    intercept) of the least-squares line used instead, so a failed fit never
    makes PLCC worse than the raw PLCC.
    """

    params: tuple[float, float, float, float] | None
    converged: bool
    linear: tuple[float, float] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.params is not None:
            return logistic4(x, *self.params)
        slope, intercept = self.linear or (0.0, 0.0)
        return slope * x + intercept


def fit_logistic(
    pred: Sequence[float], mos: Sequence[float], p0: Sequence[float] | None = None
) -> LogisticFit:
    """Least-squares fit of :func:`logistic4` mapping ``pred`` onto ``mos``.

    Starts from the VQEG initial guess (b1 = max MOS, b2 = min MOS, b3 = mean
    prediction, b4 = std of predictions / 4), oriented by the sign of the
    Pearson correlation so that lower-is-better scorers fit as well. ``p0``
    overrides the initial guess (the bootstrap warm-starts from the full fit).
    """
    from scipy.optimize import curve_fit

    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    sx = float(np.std(x))
    if sx > 0 and np.std(y) > 0:
        r = float(np.corrcoef(x, y)[0, 1])
        hi, lo = float(np.max(y)), float(np.min(y))
        b1, b2 = (hi, lo) if r >= 0 else (lo, hi)
        start = list(p0) if p0 is not None else [b1, b2, float(np.mean(x)), sx / 4.0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(logistic4, x, y, p0=start, maxfev=20000)
            if np.all(np.isfinite(params)) and np.isfinite(logistic4(x, *params)).all():
                return LogisticFit(tuple(float(v) for v in params), True)  # type: ignore[arg-type]
        except (RuntimeError, ValueError, TypeError):
            pass
    slope, intercept = np.polyfit(x, y, 1) if sx > 0 else (0.0, float(np.mean(y)))
    return LogisticFit(None, False, (float(slope), float(intercept)))


# -- per-corpus metrics -------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xd = np.asarray(x, dtype=np.float64) - np.mean(x)
    yd = np.asarray(y, dtype=np.float64) - np.mean(y)
    den = math.sqrt(float(np.dot(xd, xd)) * float(np.dot(yd, yd)))
    return float(np.dot(xd, yd) / den) if den > 0 else float("nan")


@METRICS.register("srcc", higher_is_better=True, description="Spearman rank-order correlation")
def srcc(pred: np.ndarray, mos: np.ndarray) -> float:
    from scipy.stats import rankdata

    return _pearson(rankdata(pred), rankdata(mos))


@METRICS.register("krcc", higher_is_better=True, description="Kendall rank correlation (tau-b)")
def krcc(pred: np.ndarray, mos: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(pred, mos).statistic)


@METRICS.register("plcc", higher_is_better=True, description="Pearson linear correlation, raw predictions")
def plcc(pred: np.ndarray, mos: np.ndarray) -> float:
    return _pearson(pred, mos)


@METRICS.register(
    "plcc_fit",
    higher_is_better=True,
    fitted_of="plcc",
    description="Pearson correlation after the 4-parameter logistic fit",
)
def plcc_fit(pred: np.ndarray, mos: np.ndarray) -> float:
    return plcc(fit_logistic(pred, mos)(pred), mos)


@METRICS.register("rmse", higher_is_better=False, description="RMSE of raw predictions vs MOS (same scale)")
def rmse(pred: np.ndarray, mos: np.ndarray) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(mos, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


@METRICS.register(
    "rmse_fit",
    higher_is_better=False,
    fitted_of="rmse",
    description="RMSE after the 4-parameter logistic fit (MOS scale)",
)
def rmse_fit(pred: np.ndarray, mos: np.ndarray) -> float:
    return rmse(fit_logistic(pred, mos)(pred), mos)


DEFAULT_METRICS = ("srcc", "krcc", "plcc", "plcc_fit", "rmse", "rmse_fit")


# -- aggregation with bootstrap -----------------------------------------------


@dataclass
class MetricValue:
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _r(self.value), "ci_low": _r(self.ci_low), "ci_high": _r(self.ci_high)}


def _r(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


@dataclass
class MetricReport:
    """Metrics over the successful predictions of one run, with failure counts."""

    n_total: int
    n_ok: int
    n_failed: int
    values: dict[str, MetricValue] = field(default_factory=dict)
    confidence: float = 0.95
    n_boot: int = 0
    extra: dict[str, float | None] = field(default_factory=dict)
    """Descriptive numbers that are not correlation metrics (e.g. mean score of a group)."""

    def value(self, name: str) -> float | None:
        mv = self.values.get(name)
        return None if mv is None else mv.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_total": self.n_total,
            "n_ok": self.n_ok,
            "n_failed": self.n_failed,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "metrics": {k: v.to_dict() for k, v in self.values.items()},
            **({"extra": {k: _r(v) for k, v in self.extra.items()}} if self.extra else {}),
        }


def split_failures(pred: Sequence[float | None], mos: Sequence[float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop failed predictions (``None``/NaN/inf); return (pred, mos, n_failed)."""
    if len(pred) != len(mos):
        raise ValueError(f"{len(pred)} predictions but {len(mos)} MOS values")
    keep_p: list[float] = []
    keep_m: list[float] = []
    failed = 0
    for p, m in zip(pred, mos):
        if p is None or not math.isfinite(float(p)):
            failed += 1
            continue
        keep_p.append(float(p))
        keep_m.append(float(m))
    return np.asarray(keep_p), np.asarray(keep_m), failed


def _degenerate(p: np.ndarray, m: np.ndarray) -> bool:
    return len(p) < MIN_POINTS or np.std(p) == 0 or np.std(m) == 0


def _evaluate_all(
    p: np.ndarray, m: np.ndarray, fns: dict[str, tuple[MetricFn, bool]], p0: Sequence[float] | None
) -> tuple[dict[str, float], LogisticFit | None]:
    """All metrics on one sample; the logistic is fitted once and shared by the fitted metrics."""
    nan = float("nan")
    if _degenerate(p, m):
        return {k: nan for k in fns}, None
    fit = fit_logistic(p, m, p0=p0) if any(f for _, f in fns.values()) else None
    mapped = fit(p) if fit is not None else p
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (fn, fitted) in fns.items():
            x = mapped if fitted else p
            out[name] = nan if np.std(x) == 0 else float(fn(x, m))
    return out, fit


def compute_metrics(
    pred: Sequence[float | None],
    mos: Sequence[float],
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MetricReport:
    """Metrics with percentile-bootstrap CIs (resampling images with replacement).

    ``n_boot=0`` skips the intervals. Fitted metrics refit the logistic on
    every resample (warm-started from the full-sample fit), so their
    intervals include the fit's own uncertainty.
    """
    p, m, failed = split_failures(pred, mos)
    report = MetricReport(
        n_total=len(pred), n_ok=len(p), n_failed=failed, confidence=confidence, n_boot=n_boot
    )
    fns: dict[str, tuple[MetricFn, bool]] = {}
    for name in metrics:
        meta = METRICS.metadata(name)
        base = meta.get("fitted_of")
        fns[name] = (get_metric(base), True) if base else (get_metric(name), False)
    values, fit = _evaluate_all(p, m, fns, None)
    boots: dict[str, list[float]] = {k: [] for k in fns}
    if n_boot > 0 and not _degenerate(p, m):
        rng = np.random.default_rng(seed)
        p0 = fit.params if fit is not None and fit.converged else None
        for i in rng.integers(0, len(p), size=(n_boot, len(p))):
            sample, _ = _evaluate_all(p[i], m[i], fns, p0)
            for k, v in sample.items():
                if math.isfinite(v):
                    boots[k].append(v)
    alpha = (1.0 - confidence) / 2.0
    for name in fns:
        value = values[name]
        lo = hi = None
        if boots[name] and math.isfinite(value):
            lo, hi = (float(v) for v in np.quantile(boots[name], [alpha, 1.0 - alpha]))
        report.values[name] = MetricValue(value if math.isfinite(value) else None, lo, hi)
    return report
