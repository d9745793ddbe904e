"""Vectorised nonparametric bootstrap over samples (forget samples are the resampling unit).

Resampling whole samples keeps the draws of one sample together, so the intervals account for both sources
of noise: the Monte-Carlo draws and the finite forget set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from .intervals import Estimate


def bootstrap_weights(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """``[replicates, n]`` multinomial resampling counts (float64), one row per bootstrap resample."""
    if n == 0:
        return np.zeros((replicates, 0))
    idx = rng.integers(0, n, size=(replicates, n))
    weights = np.zeros((replicates, n))
    np.add.at(weights, (np.repeat(np.arange(replicates), n), idx.ravel()), 1.0)
    return weights


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 0.9 * replicates.size or finite.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - level
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bca_interval(estimate: float, replicates: np.ndarray, jackknife: np.ndarray, level: float) -> tuple[float, float]:
    """Bias-corrected and accelerated interval (Efron 1987) from replicates and leave-one-out values."""
    finite = replicates[np.isfinite(replicates)]
    jack = jackknife[np.isfinite(jackknife)]
    if finite.size < 0.9 * replicates.size or finite.size == 0 or jack.size < 2 or not np.isfinite(estimate):
        return percentile_interval(replicates, level)
    below = np.mean(finite < estimate) + 0.5 * np.mean(finite == estimate)
    below = float(np.clip(below, 1.0 / (finite.size + 1), 1 - 1.0 / (finite.size + 1)))
    z0 = stats.norm.ppf(below)
    diff = jack.mean() - jack
    denom = 6.0 * np.sum(diff**2) ** 1.5
    accel = float(np.sum(diff**3) / denom) if denom > 0 else 0.0
    alpha = 1.0 - level
    quantiles = []
    for z_alpha in (stats.norm.ppf(alpha / 2), stats.norm.ppf(1 - alpha / 2)):
        adj = z0 + (z0 + z_alpha) / (1 - accel * (z0 + z_alpha))
        quantiles.append(float(np.clip(stats.norm.cdf(adj), 0.0, 1.0)))
    lo, hi = np.quantile(finite, quantiles)
    return float(lo), float(hi)


def interval(
    estimate: float,
    replicates: np.ndarray,
    level: float,
    method: str,
    jackknife: Callable[[], np.ndarray] | None = None,
) -> Estimate:
    """An :class:`Estimate` from bootstrap replicates; ``method`` is ``percentile`` or ``bca``."""
    if method == "bca" and jackknife is not None:
        lo, hi = bca_interval(estimate, replicates, jackknife(), level)
        name = "bootstrap-bca"
    else:
        lo, hi = percentile_interval(replicates, level)
        name = "bootstrap-percentile"
    return Estimate(float(estimate), lo, hi, name, level)
