"""Metrics agree with scipy, the logistic fit recovers a known curve, CIs cover the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qprobe.eval.metrics import (
    METRICS,
    compute_metrics,
    fit_logistic,
    get_metric,
    list_metrics,
    logistic4,
    split_failures,
)


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = 3 + np.tanh(x) + rng.normal(0, 0.4, size=200)
    x[:10] = x[10]  # ties
    return x, y


def test_registry_lists_all_metrics() -> None:
    assert {"srcc", "krcc", "plcc", "plcc_fit", "rmse", "rmse_fit"} <= set(list_metrics())
    assert list_metrics("*fit") == ["plcc_fit", "rmse_fit"]
    assert METRICS.metadata("rmse")["higher_is_better"] is False


def test_correlations_match_scipy(vectors: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = vectors
    assert get_metric("srcc")(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert get_metric("krcc")(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert get_metric("plcc")(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert get_metric("rmse")(x, y) == pytest.approx(math.sqrt(np.mean((x - y) ** 2)), abs=1e-12)
    # a decreasing relation gives negative rank correlation
    assert get_metric("srcc")(-x, y) == pytest.approx(-stats.spearmanr(x, y).statistic, abs=1e-12)


def test_logistic_fit_recovers_known_curve() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, size=400)
    true = (4.6, 1.3, 55.0, 9.0)
    y = logistic4(x, *true)
    fit = fit_logistic(x, y)
    assert fit.converged
    assert np.allclose(fit.params, true, rtol=1e-3, atol=1e-3)
    # noisy, lower-is-better predictor: fit maps onto MOS and PLCC_fit beats raw PLCC
    y_noisy = y + rng.normal(0, 0.1, size=x.size)
    pred = -x
    fit2 = fit_logistic(pred, y_noisy)
    assert np.sqrt(np.mean((fit2(pred) - y_noisy) ** 2)) < 0.13
    assert get_metric("plcc_fit")(pred, y_noisy) > abs(get_metric("plcc")(pred, y_noisy))


def test_logistic_fit_falls_back_on_constant_predictions() -> None:
    fit = fit_logistic([2.0] * 10, list(range(10)))
    assert not fit.converged
    assert np.allclose(fit(np.array([2.0])), 4.5)


def test_failures_are_counted_not_substituted() -> None:
    pred = [1.0, None, 3.0, float("nan"), 5.0, 4.0]
    mos = [1.0, 2.0, 3.0, 4.0, 5.0, 4.5]
    p, m, failed = split_failures(pred, mos)
    assert failed == 2 and list(p) == [1.0, 3.0, 5.0, 4.0] and list(m) == [1.0, 3.0, 5.0, 4.5]
    rep = compute_metrics(pred, mos, n_boot=0)
    assert (rep.n_total, rep.n_ok, rep.n_failed) == (6, 4, 2)
    assert rep.value("srcc") == pytest.approx(stats.spearmanr(p, m).statistic)
    with pytest.raises(ValueError, match="predictions"):
        split_failures([1.0], [1.0, 2.0])


def test_too_few_points_give_none() -> None:
    rep = compute_metrics([1.0, None], [2.0, 3.0], n_boot=10)
    assert rep.value("srcc") is None and rep.n_failed == 1


def test_bootstrap_ci_covers_truth_on_synthetic_data() -> None:
    """95 % percentile-bootstrap CIs of PLCC cover the population correlation in most repetitions."""
    rho = 0.6
    cov = [[1.0, rho], [rho, 1.0]]
    hits = 0
    reps = 60
    for r in range(reps):
        rng = np.random.default_rng(100 + r)
        xy = rng.multivariate_normal([0, 0], cov, size=150)
        rep = compute_metrics(xy[:, 0], xy[:, 1], metrics=("plcc",), n_boot=300, seed=r)
        mv = rep.values["plcc"]
        assert mv.ci_low is not None and mv.ci_low < mv.value < mv.ci_high
        hits += mv.ci_low <= rho <= mv.ci_high
    assert 0.85 <= hits / reps <= 1.0


def test_report_serialises() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    rep = compute_metrics(x, x + rng.normal(0, 0.5, 50), n_boot=50)
    d = rep.to_dict()
    assert d["n_ok"] == 50 and set(d["metrics"]) == {"srcc", "krcc", "plcc", "plcc_fit", "rmse", "rmse_fit"}
    assert d["metrics"]["srcc"]["ci_low"] <= d["metrics"]["srcc"]["value"] <= d["metrics"]["srcc"]["ci_high"]
