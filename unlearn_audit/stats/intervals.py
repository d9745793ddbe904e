"""Confidence intervals for single proportions and the :class:`Estimate` value object.

Why not ``scipy.stats.binomtest(k, n).proportion_ci``: measured on 900 (k, n) pairs (docs/architecture.md), it
is 8× slower for Wilson and 20× slower for Clopper–Pearson (it computes the test as well), its bounds differ from
these in the last bits (which would change published reports), and it has no vectorised form for
:func:`wilson_arrays`. Clopper–Pearson here is two calls of ``scipy.stats.beta.ppf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided interval. No bare float leaves ``stats/``."""

    value: float
    lo: float
    hi: float
    method: str
    level: float = 0.95

    def to_dict(self) -> dict[str, float | str | None]:
        return {
            "value": _clean(self.value),
            "lo": _clean(self.lo),
            "hi": _clean(self.hi),
            "method": self.method,
            "level": self.level,
        }

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{self.value:{spec}} [{self.lo:{spec}}, {self.hi:{spec}}]"


def _clean(x: float) -> float | None:
    """JSON has no NaN/inf: undefined values become null."""
    return None if x is None or not math.isfinite(x) else float(x)


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def wilson(successes: int, trials: int, level: float = 0.95) -> Estimate:
    """Wilson score interval for a binomial proportion."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Estimate(math.nan, 0.0, 1.0, "wilson", level)
    z = _z(level)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, lo, hi, "wilson", level)


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> Estimate:
    """Exact (conservative) binomial interval."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Estimate(math.nan, 0.0, 1.0, "clopper-pearson", level)
    alpha = 1.0 - level
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return Estimate(successes / trials, lo, hi, "clopper-pearson", level)


def wilson_arrays(
    successes: np.ndarray, trials: np.ndarray | int, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson bounds (used for per-τ curves)."""
    k = np.asarray(successes, dtype=float)
    n = np.broadcast_to(np.asarray(trials, dtype=float), k.shape)
    z = _z(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = np.where(k == 0, 0.0, np.clip(centre - half, 0, 1))
    hi = np.where(k == n, 1.0, np.clip(centre + half, 0, 1))
    return lo, hi
