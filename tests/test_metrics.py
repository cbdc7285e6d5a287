"""Tests of keras_lmiqa.metrics against scipy and hand-checkable numbers."""

import logging
import math

import numpy as np
import pytest
from scipy import stats

from keras_lmiqa import metrics


def _tied_data(seed=0, n=200):
    rng = np.random.default_rng(seed)
    target = rng.integers(1, 6, size=n).astype(float)  # MOS with many ties
    pred = np.round(target + rng.normal(0, 1.0, size=n), 1)  # ties in predictions too
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlations_match_scipy_with_ties(seed):
    pred, target = _tied_data(seed)
    assert len(np.unique(pred)) < len(pred) and len(np.unique(target)) < len(target)
    assert metrics.srcc(pred, target) == pytest.approx(stats.spearmanr(pred, target)[0], abs=1e-12)
    assert metrics.plcc(pred, target) == pytest.approx(stats.pearsonr(pred, target)[0], abs=1e-12)
    assert metrics.krcc(pred, target) == pytest.approx(stats.kendalltau(pred, target)[0], abs=1e-12)
    assert metrics.rmse(pred, target) == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)))


def test_evaluate_matches_scipy_and_keys():
    pred, target = _tied_data(3)
    out = metrics.evaluate(pred, target)
    assert set(out) == {"srcc", "plcc", "plcc_logistic", "krcc", "rmse", "n"}
    assert out["n"] == len(pred)
    assert out["srcc"] == pytest.approx(stats.spearmanr(pred, target)[0], abs=1e-12)
    assert out["plcc"] == pytest.approx(stats.pearsonr(pred, target)[0], abs=1e-12)
    assert out["krcc"] == pytest.approx(stats.kendalltau(pred, target)[0], abs=1e-12)
    fit = metrics.fit_logistic(pred, target)
    mapped = fit(pred)
    assert out["plcc_logistic"] == pytest.approx(stats.pearsonr(mapped, target)[0], abs=1e-12)
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((mapped - target) ** 2)), abs=1e-12)
    # The least-squares mapping cannot be worse than the best affine-free identity here.
    assert out["rmse"] <= metrics.rmse(pred, target) + 1e-9
    assert all(math.isfinite(v) for v in out.values())


def test_logistic_4_formula():
    x = np.array([-2.0, 0.0, 1.5, 3.0])
    b1, b2, b3, b4 = 5.0, 1.0, 0.5, -0.7  # |b4| is used
    expected = (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2
    np.testing.assert_allclose(metrics.logistic_4(x, b1, b2, b3, b4), expected, rtol=1e-12)
    assert metrics.logistic_4(0.5, b1, b2, b3, b4) == pytest.approx(3.0)
    # No overflow far in the tails.
    assert np.all(np.isfinite(metrics.logistic_4(np.array([-1e6, 1e6]), b1, b2, b3, 1e-3)))


def test_fit_logistic_recovers_known_curve():
    rng = np.random.default_rng(7)
    pred = rng.uniform(0, 1, 300)
    true = (80.0, 10.0, 0.45, 0.12)
    target = metrics.logistic_4(pred, *true) + rng.normal(0, 0.3, pred.size)
    fit = metrics.fit_logistic(pred, target)
    assert fit.converged
    b1, b2, b3, b4 = fit.params
    assert b1 == pytest.approx(80.0, abs=1.0)
    assert b2 == pytest.approx(10.0, abs=1.0)
    assert b3 == pytest.approx(0.45, abs=0.01)
    assert b4 == pytest.approx(0.12, abs=0.01)
    out = metrics.evaluate(pred, target)
    assert out["plcc_logistic"] > 0.999
    assert out["plcc"] < out["plcc_logistic"]  # raw PLCC suffers from the nonlinearity
    assert out["rmse"] == pytest.approx(0.3, abs=0.05)


def test_fit_logistic_decreasing_relation():
    # DMOS-like target that falls as the prediction rises.
    pred = np.linspace(-3, 3, 100)
    target = metrics.logistic_4(pred, 0.0, 100.0, 0.2, 0.8)
    out = metrics.evaluate(pred, target)
    assert out["plcc_logistic"] > 0.999  # the mapping follows the target, so PLCC is positive
    assert out["rmse"] < 1e-3
    assert out["srcc"] == pytest.approx(-1.0)


def test_non_converging_fit_falls_back_to_identity(caplog):
    pred, target = _tied_data(4, n=50)
    with caplog.at_level(logging.WARNING, logger="keras_lmiqa.metrics"):
        fit = metrics.fit_logistic(pred, target, maxfev=1)
    assert not fit.converged and fit.params is None
    np.testing.assert_array_equal(fit(pred), pred)
    assert "identity" in caplog.text


def test_constant_predictions_are_zero_not_nan(caplog):
    target = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    pred = np.full(5, 2.5)
    with caplog.at_level(logging.WARNING, logger="keras_lmiqa.metrics"):
        out = metrics.evaluate(pred, target)
    assert out["srcc"] == 0.0 and out["plcc"] == 0.0 and out["krcc"] == 0.0
    assert out["plcc_logistic"] == 0.0
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)))
    assert all(math.isfinite(v) for v in out.values())
    assert "constant" in caplog.text
    assert metrics.srcc(pred, target) == 0.0


def test_accepts_lists_and_column_vectors():
    target = [1.0, 2.0, 3.0, 4.0]
    pred = np.array([[1.1], [1.9], [3.2], [3.9]])
    assert metrics.srcc(pred, target) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "pred, target, match",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same length"),
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        ([1.0, float("nan"), 3.0, float("nan")], [1.0, 2.0, 3.0, 4.0], "2 NaN"),
        ([1.0, float("inf"), 3.0], [1.0, 2.0, 3.0], "infinite"),
        ([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0], "target"),
        (np.ones((3, 2)), np.ones(3), "1-D"),
    ],
)
def test_invalid_inputs(pred, target, match):
    with pytest.raises(ValueError, match=match) as info:
        metrics.evaluate(pred, target)
    assert "Received" in str(info.value)


def test_summarize_odd_count():
    results = [
        {"srcc": 0.1, "plcc": 0.2, "n": 10},
        {"srcc": 0.5, "plcc": 0.4, "n": 10},
        {"srcc": 0.9, "plcc": 0.9, "n": 10},
    ]
    s = metrics.summarize(results)
    assert s["n_splits"] == 3
    assert "n" not in s
    assert s["srcc"]["median"] == pytest.approx(0.5)
    assert s["srcc"]["mean"] == pytest.approx(0.5)
    assert s["srcc"]["std"] == pytest.approx(0.4)  # sample std (ddof=1): sqrt((0.16+0+0.16)/2)
    assert s["srcc"]["min"] == pytest.approx(0.1)
    assert s["srcc"]["max"] == pytest.approx(0.9)
    assert s["plcc"]["median"] == pytest.approx(0.4)


def test_summarize_even_count_and_single():
    s = metrics.summarize([{"srcc": v} for v in (0.2, 0.9, 0.4, 0.6)])
    assert s["srcc"]["median"] == pytest.approx(0.5)
    assert s["srcc"]["mean"] == pytest.approx(0.525)
    one = metrics.summarize([{"srcc": 0.7, "n": 5}])
    assert one["srcc"] == {"median": 0.7, "mean": 0.7, "std": 0.0, "min": 0.7, "max": 0.7}
    assert one["n_splits"] == 1


def test_summarize_evaluate_results():
    results = [metrics.evaluate(*_tied_data(seed, n=60)) for seed in range(3)]
    s = metrics.summarize(results)
    assert set(s) == {"srcc", "plcc", "plcc_logistic", "krcc", "rmse", "n_splits"}
    srccs = [r["srcc"] for r in results]
    assert s["srcc"]["median"] == pytest.approx(float(np.median(srccs)))
    assert s["srcc"]["std"] == pytest.approx(float(np.std(srccs, ddof=1)))


def test_summarize_errors():
    with pytest.raises(ValueError, match="non-empty"):
        metrics.summarize([])
    with pytest.raises(ValueError, match="missing"):
        metrics.summarize([{"srcc": 0.1}, {"plcc": 0.2}])
    with pytest.raises(ValueError, match="not a dict"):
        metrics.summarize([{"srcc": 0.1}, 0.3])


@pytest.mark.parametrize("scale, offset", [(1e-3, 0.0), (1.0, 1e6), (1e4, -5e4)])
def test_fit_is_scale_invariant(scale, offset):
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, 200)
    target = metrics.logistic_4(x, 1.0, 0.0, 0.5, 0.1) + rng.normal(0, 0.01, x.size)
    base = metrics.evaluate(x, target)
    out = metrics.evaluate(x * scale + offset, target)
    assert out["plcc_logistic"] == pytest.approx(base["plcc_logistic"], abs=1e-4)
    assert out["rmse"] == pytest.approx(base["rmse"], rel=1e-2)


def test_three_samples_use_identity_and_stay_finite():
    out = metrics.evaluate([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert out["n"] == 3
    assert out["rmse"] == pytest.approx(metrics.rmse([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]))
    assert out["srcc"] == pytest.approx(stats.spearmanr([1, 2, 4], [1, 3, 2])[0])
    assert all(math.isfinite(v) for v in out.values())
