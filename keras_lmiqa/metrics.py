"""IQA evaluation metrics (NumPy/SciPy only).

* SRCC, PLCC and KRCC are exactly `scipy.stats.spearmanr`, `pearsonr` and `kendalltau`
  (tau-b, scipy's default) on the same inputs.
* `plcc_logistic` and `rmse` in :func:`evaluate` follow the VQEG convention: the
  predictions are first mapped onto the target scale with the 4-parameter logistic
  :func:`logistic_4` fitted by least squares (:func:`fit_logistic`); PLCC and RMSE are
  then computed between the mapped predictions and the targets.
* Constant inputs: a correlation with a constant vector is undefined (scipy returns
  NaN); here it is defined as 0.0 and a warning is logged, so results never contain NaN.
* A logistic fit that does not converge falls back to the identity mapping (with a
  logged warning); it never raises.

Predictions and targets are on the dataset's own scale (MOS or DMOS as distributed).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings

import numpy as np
from scipy import optimize, special, stats

logger = logging.getLogger(__name__)

METRIC_KEYS = ("srcc", "plcc", "plcc_logistic", "krcc", "rmse")
SUMMARY_STATS = ("median", "mean", "std", "min", "max")

_TINY = 1e-12


def _as_1d(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric. Received: {values!r}") from None
    if array.ndim != 1:
        if array.ndim > 1 and sum(d != 1 for d in array.shape) <= 1:
            array = array.reshape(-1)  # (n, 1) or (1, n)
        else:
            raise ValueError(f"{name} must be a 1-D array. Received: shape {array.shape}")
    return array


def _validate(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_1d(pred, "pred")
    target = _as_1d(target, "target")
    if pred.shape[0] != target.shape[0]:
        raise ValueError(
            "pred and target must have the same length. "
            f"Received: len(pred)={pred.shape[0]}, len(target)={target.shape[0]}"
        )
    n_nan = int(np.isnan(pred).sum())
    if n_nan:
        raise ValueError(f"pred contains {n_nan} NaN value(s) out of {pred.shape[0]}. Received: {n_nan} NaN")
    n_bad_pred = int((~np.isfinite(pred)).sum())
    if n_bad_pred:
        raise ValueError(f"pred contains {n_bad_pred} infinite value(s) out of {pred.shape[0]}. "
                         f"Received: {n_bad_pred} inf")
    n_bad_target = int((~np.isfinite(target)).sum())
    if n_bad_target:
        raise ValueError(
            f"target contains {n_bad_target} non-finite value(s) out of {target.shape[0]}. "
            f"Received: {n_bad_target} NaN/inf"
        )
    if pred.shape[0] < 3:
        raise ValueError(f"at least 3 finite values are needed. Received: {pred.shape[0]}")
    return pred, target


def _is_constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) == 0.0)


def _correlation(fn, name: str, pred: np.ndarray, target: np.ndarray) -> float:
    which = [n for n, v in (("pred", pred), ("target", target)) if _is_constant(v)]
    if which:
        logger.warning("%s: %s is constant; correlation is undefined and reported as 0.0", name, " and ".join(which))
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", getattr(stats, "NearConstantInputWarning", RuntimeWarning))
        warnings.simplefilter("ignore", getattr(stats, "ConstantInputWarning", RuntimeWarning))
        value = float(fn(pred, target)[0])
    if not math.isfinite(value):
        logger.warning("%s is undefined for these inputs (near-constant); reported as 0.0", name)
        return 0.0
    return value


def _srcc(pred, target) -> float:
    return _correlation(stats.spearmanr, "srcc", pred, target)


def _plcc(pred, target) -> float:
    return _correlation(stats.pearsonr, "plcc", pred, target)


def _krcc(pred, target) -> float:
    return _correlation(stats.kendalltau, "krcc", pred, target)


def _rmse(pred, target) -> float:
    return float(np.sqrt(np.mean((pred - target) ** 2)))


def srcc(pred, target) -> float:
    """Spearman rank correlation (`scipy.stats.spearmanr`); 0.0 for constant input."""
    return _srcc(*_validate(pred, target))


def plcc(pred, target) -> float:
    """Pearson linear correlation of the raw values (`scipy.stats.pearsonr`); 0.0 for
    constant input."""
    return _plcc(*_validate(pred, target))


def krcc(pred, target) -> float:
    """Kendall rank correlation, tau-b (`scipy.stats.kendalltau`); 0.0 for constant input."""
    return _krcc(*_validate(pred, target))


def rmse(pred, target) -> float:
    """Root mean squared error of the raw values (no logistic mapping)."""
    return _rmse(*_validate(pred, target))


def logistic_4(x, b1, b2, b3, b4):
    """VQEG 4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    Computed with `scipy.special.expit` so large arguments do not overflow.
    """
    scale = max(abs(float(b4)), _TINY)
    return (b1 - b2) * special.expit((np.asarray(x, dtype=np.float64) - b3) / scale) + b2


@dataclasses.dataclass(frozen=True)
class LogisticFit:
    """A fitted prediction -> target mapping.

    Attributes:
        params: `(b1, b2, b3, b4)` of :func:`logistic_4`, or None for the identity
            fallback.
        converged: False when the fit failed and the identity mapping is used.
    """

    params: tuple[float, float, float, float] | None
    converged: bool

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.params is None:
            return x.copy()
        return logistic_4(x, *self.params)

    def to_dict(self) -> dict:
        return {"params": None if self.params is None else list(self.params), "converged": self.converged}


def _location_scale(values) -> tuple[float, float]:
    """(mean, std) for standardising; std 1 when it is 0 or not finite."""
    mean, std = float(np.mean(values)), float(np.std(values))
    return mean, std if std > 0 and math.isfinite(std) else 1.0


def _fit_standardised(pred, target, zp, zt, guess, location_scale, maxfev: int):
    """(squared error, params in original units) of one curve_fit from `guess` on the
    standardised data, or None when it fails or gives non-finite values."""
    p_mean, p_std, t_mean, t_std = location_scale
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            z_params, _ = optimize.curve_fit(logistic_4, zp, zt, p0=guess, maxfev=maxfev)
    except (RuntimeError, ValueError, TypeError, FloatingPointError, np.linalg.LinAlgError) as exc:
        logger.debug("fit_logistic: fit from %s failed: %s", guess, exc)
        return None
    c1, c2, c3, c4 = (float(v) for v in z_params)
    params = (t_mean + t_std * c1, t_mean + t_std * c2, p_mean + p_std * c3, p_std * max(abs(c4), _TINY))
    if not all(math.isfinite(v) for v in params):
        return None
    with np.errstate(all="ignore"):
        mapped = logistic_4(pred, *params)
        sse = float(np.sum((mapped - target) ** 2))
    if not (np.all(np.isfinite(mapped)) and math.isfinite(sse)):
        return None
    return sse, params


def fit_logistic(pred, target, maxfev: int = 10000) -> LogisticFit:
    """Fit :func:`logistic_4` mapping `pred` onto `target` by least squares.

    Uses `scipy.optimize.curve_fit` (on standardised predictions and targets, mapped
    back afterwards) from the initial guess b1 = max(target), b2 = min(target),
    b3 = mean(pred), b4 = std(pred) (1 when that is 0); the guess with b1/b2 swapped
    (suited to anti-correlated data) is tried too and the fit with the lower squared
    error wins. If no fit converges to finite
    parameters with finite outputs (or `pred` is constant), logs a warning and returns
    the identity mapping; so does a sample of fewer than 4 points (fewer than the
    parameters). Never raises for a non-converging fit.

    Raises:
        ValueError: invalid inputs (see :func:`evaluate`).
    """
    pred, target = _validate(pred, target)
    if _is_constant(pred):
        logger.warning("fit_logistic: predictions are constant; using the identity mapping")
        return LogisticFit(params=None, converged=False)
    if pred.shape[0] < 4:
        logger.warning(
            "fit_logistic: %d samples cannot fit 4 parameters; using the identity mapping", pred.shape[0]
        )
        return LogisticFit(params=None, converged=False)
    # Fit in standardised coordinates: the problem is then well conditioned whatever
    # the score scale, and MINPACK's finite-difference steps (relative to each
    # parameter) do not vanish for a near-zero initial b3. The initial guess
    # (max z_target, min z_target, 0, 1) is exactly the guess b1 = max(target),
    # b2 = min(target), b3 = mean(pred), b4 = std(pred) in the original coordinates.
    p_mean, p_std = _location_scale(pred)
    t_mean, t_std = _location_scale(target)
    zp = (pred - p_mean) / p_std
    zt = (target - t_mean) / t_std
    hi, lo = float(np.max(zt)), float(np.min(zt))
    best: tuple[float, tuple[float, ...]] | None = None
    for guess in ((hi, lo, 0.0, 1.0), (lo, hi, 0.0, 1.0)):
        fit = _fit_standardised(pred, target, zp, zt, guess, (p_mean, p_std, t_mean, t_std), maxfev)
        if fit is not None and (best is None or fit[0] < best[0]):
            best = fit
    if best is None:
        logger.warning("fit_logistic: the logistic fit did not converge; using the identity mapping")
        return LogisticFit(params=None, converged=False)
    return LogisticFit(params=best[1], converged=True)


def evaluate(pred, target) -> dict:
    """All metrics of predictions against subjective scores.

    Args:
        pred: 1-D predictions, on the dataset's own scale.
        target: 1-D subjective scores (MOS or DMOS), same length.

    Returns:
        dict with
        `srcc`, `plcc`, `krcc`: scipy's Spearman, Pearson and Kendall (tau-b) on the raw
        values; `plcc_logistic`: Pearson after the 4-parameter logistic mapping
        (:func:`fit_logistic`); `rmse`: RMSE of the logistic-mapped predictions against
        the targets (VQEG convention; the raw RMSE is :func:`rmse`); `n`: the number of
        samples. Correlations with a constant vector are reported as 0.0 with a logged
        warning; no value is ever NaN.

    Raises:
        ValueError: different lengths, fewer than 3 values, NaN/inf in predictions
            (the message gives the count), or non-finite targets.
    """
    pred, target = _validate(pred, target)
    mapping = fit_logistic(pred, target)
    mapped = mapping(pred)
    return {
        "srcc": _srcc(pred, target),
        "plcc": _plcc(pred, target),
        "plcc_logistic": _correlation(stats.pearsonr, "plcc_logistic", mapped, target),
        "krcc": _krcc(pred, target),
        "rmse": _rmse(mapped, target),
        "n": int(pred.shape[0]),
    }


def summarize(results: list[dict]) -> dict:
    """Aggregate per-split :func:`evaluate` results.

    Every numeric key present in all results except `n` (normally `srcc`, `plcc`,
    `plcc_logistic`, `krcc`, `rmse`) is summarised as
    ``{"median", "mean", "std", "min", "max"}``. `std` is the sample standard deviation
    (ddof=1) when there are at least 2 splits and 0.0 for a single split. The result
    also holds `n_splits`.

    Raises:
        ValueError: empty `results`, non-dict entries, or results missing a metric.
    """
    if isinstance(results, dict) or not results:
        raise ValueError(f"summarize needs a non-empty list of evaluate() results. Received: {results!r}")
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            raise ValueError(f"result {i} is not a dict. Received: {result!r}")

    def numeric(value) -> bool:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))

    keys = [k for k, v in results[0].items() if k != "n" and numeric(v)]
    if not keys:
        raise ValueError(f"results hold no metrics. Received: {results[0]!r}")
    summary: dict = {}
    for key in keys:
        missing = [i for i, r in enumerate(results) if key not in r or not numeric(r[key])]
        if missing:
            raise ValueError(f"metric {key!r} is missing or not a number in result(s) {missing}. Received: {results!r}")
        values = np.asarray([float(r[key]) for r in results], dtype=np.float64)
        summary[key] = {
            "median": float(np.median(values)),
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if values.size >= 2 else 0.0,
            "min": float(np.min(values)),
            "max": float(np.max(values)),
        }
    summary["n_splits"] = len(results)
    return summary


__all__ = [
    "srcc",
    "plcc",
    "krcc",
    "rmse",
    "logistic_4",
    "LogisticFit",
    "fit_logistic",
    "evaluate",
    "summarize",
    "METRIC_KEYS",
]
