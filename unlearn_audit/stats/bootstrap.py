"""Vectorised nonparametric bootstrap over samples (forget samples are the resampling unit).

Resampling whole samples keeps the draws of one sample together, so the intervals account for both sources
of noise: the Monte-Carlo draws and the finite forget set.

Why not ``scipy.stats.bootstrap``: here one weight matrix is drawn once and shared by every τ row, the pooled
estimate and every null comparison, so they are computed on the same (paired) resamples, and it can be
regenerated chunk by chunk so memory does not grow with the forget set. scipy resamples per call; for one BCa
ratio of means at n = 2,000 it took 2.2 s and 156 MiB against 0.87 s and 40 MiB here (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from .intervals import Estimate

#: Above this many weight entries (replicates × samples) the weights are regenerated chunk by chunk on every
#: product instead of being held in memory, so memory does not grow with the forget set.
MAX_DENSE_WEIGHTS = 2 * 1024**2

#: Fewer replicates than this beyond an interval end (``(1 − level)/2 × replicates``): the end is taken from the
#: normal approximation instead of a quantile (see :func:`interval`). At the default 2,000 replicates this is a
#: level above 99.9 %, which only a sequential audit's early looks (or more than 25 counted probes) ask for.
MIN_TAIL_REPLICATES = 2


def _multinomial_rows(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(rows, n))
    flat = (np.arange(rows)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


class ChunkedWeights:
    """``[replicates, n]`` bootstrap weights that are never held in memory at once.

    Supports what the estimators use: ``W @ x`` (x of shape [n] or [n, k]), ``W.sum(axis=1)``, ``W * row``
    (a per-sample scaling, e.g. class-matching weights) and ``.shape``. Every product regenerates the same
    weights from per-chunk seeds, so results equal those of a dense matrix drawn the same way.
    """

    def __init__(
        self, seed: np.random.SeedSequence, n: int, replicates: int, chunk: int, scale: np.ndarray | None = None
    ):
        self.seed, self.n, self.replicates, self.chunk = seed, n, replicates, chunk
        self.scale = scale
        self.shape = (replicates, n)

    def _blocks(self):  # noqa: ANN202 - iterator of (start, weights)
        for i in range((self.replicates + self.chunk - 1) // self.chunk):
            # derived, not spawned: SeedSequence.spawn() advances the parent, which would break regeneration
            child = np.random.SeedSequence(self.seed.entropy, spawn_key=(*self.seed.spawn_key, i))
            rows = min(self.chunk, self.replicates - i * self.chunk)
            block = _multinomial_rows(np.random.default_rng(child), self.n, rows)
            yield i * self.chunk, block if self.scale is None else block * self.scale[None, :]

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        other = np.asarray(other, dtype=float)
        out = np.empty((self.replicates, *other.shape[1:]))
        for start, block in self._blocks():
            out[start : start + block.shape[0]] = block @ other
        return out

    def sum(self, axis: int = 1, keepdims: bool = False) -> np.ndarray:
        if axis != 1:
            raise ValueError("only row sums are supported")
        total = self @ np.ones(self.n)
        return total[:, None] if keepdims else total

    def __mul__(self, row: np.ndarray) -> ChunkedWeights:
        row = np.asarray(row, dtype=float).reshape(-1)
        scale = row if self.scale is None else self.scale * row
        return ChunkedWeights(self.seed, self.n, self.replicates, self.chunk, scale)


def bootstrap_weights(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """``[replicates, n]`` multinomial resampling counts (float64), one row per bootstrap resample.

    Large problems get a :class:`ChunkedWeights` (same interface for the operations the estimators use).
    """
    if n == 0:
        return np.zeros((replicates, 0))
    if replicates * n > MAX_DENSE_WEIGHTS:
        seed = np.random.SeedSequence(int(rng.integers(0, 2**63)))
        chunk = max(1, MAX_DENSE_WEIGHTS // (2 * n))
        return ChunkedWeights(seed, n, replicates, chunk)  # type: ignore[return-value]
    return _multinomial_rows(rng, n, replicates)


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
        denominator = 1 - accel * (z0 + z_alpha)
        if denominator <= 0 or not np.isfinite(denominator):
            # a very high level (a sequential audit's early look) with skewed data: the BCa map leaves its domain;
            # the interval end is then the most extreme replicate on that side (the conservative limit)
            quantiles.append(0.0 if z_alpha < 0 else 1.0)
            continue
        adj = z0 + (z0 + z_alpha) / denominator
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
    """An :class:`Estimate` from bootstrap replicates; ``method`` is ``percentile`` or ``bca``.

    At a level whose tails hold fewer than :data:`MIN_TAIL_REPLICATES` replicates (a sequential audit's early
    looks ask for 99.99…%), no quantile of the replicates can stand for the interval end: the interval is then
    the normal one, ``estimate ± z·sd(replicates)`` (``bootstrap-normal``), which keeps its nominal level as
    the level grows instead of stopping at the most extreme replicate."""
    finite = replicates[np.isfinite(replicates)]
    tail = (1.0 - level) / 2.0
    if tail * replicates.size < MIN_TAIL_REPLICATES and finite.size >= 0.9 * replicates.size and finite.size > 1:
        half = float(stats.norm.isf(tail) * np.std(finite, ddof=1))
        return Estimate(float(estimate), float(estimate) - half, float(estimate) + half, "bootstrap-normal", level)
    if method == "bca" and jackknife is not None:
        lo, hi = bca_interval(estimate, replicates, jackknife(), level)
        name = "bootstrap-bca"
    else:
        lo, hi = percentile_interval(replicates, level)
        name = "bootstrap-percentile"
    return Estimate(float(estimate), lo, hi, name, level)
