"""Group-sequential boundaries: when an audit may look at its data early and stop (SPEC §4, docs/methodology.md).

An audit that looks at its forget samples in stages (by default ¼, ½, all) and stops as soon as every
probe is decided gets more chances to report a false finding than one that looks once. Alpha spending
(Lan & DeMets 1983) fixes that: a spending function ``α(t)`` says how much of the error budget ``α`` may be
used by information fraction ``t`` (here the share of forget samples seen), and each look's two-sided
critical value ``c_k`` is chosen so that

    P(|Z_1| < c_1, …, |Z_{k-1}| < c_{k-1}, |Z_k| ≥ c_k) = α(t_k) − α(t_{k-1})

under the null, where ``Z_k`` is the standardised statistic at look k. The ``Z_k`` of one audit are the
partial sums of a Brownian motion observed at ``t_k`` (``corr(Z_j, Z_k) = √(t_j / t_k)``), and the
probabilities are computed by the recursive numerical integration of Armitage, McPherson & Rowe (1969) on
the score scale ``S_k = Z_k √t_k``. The intervals reported at look k use level ``2Φ(c_k) − 1``: these are
the *repeated confidence intervals* of Jennison & Turnbull (1989), which cover the truth simultaneously at
every look with probability ≥ 1 − α, so the interval at whichever look the audit stops at covers at ≥ the
nominal rate, whatever rule decided the stop.

numpy/scipy only; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import optimize, stats

SPENDING_FUNCTIONS = ("kim-demets", "obrien-fleming", "pocock")

#: The default spending function (docs/methodology.md, "Sequential audits", says why).
DEFAULT_SPENDING: Final = "kim-demets"

#: ρ of the default ``kim-demets`` spending ``α·t^ρ``: between Pocock-like (ρ = 1) and O'Brien–Fleming-like (ρ = 3).
KIM_DEMETS_RHO = 1.5

#: Default looks: shares of the forget set seen before each analysis.
DEFAULT_LOOKS = (0.25, 0.5, 1.0)

_GRID = 801  # points of the density grid on the continuation region (odd: includes 0)


def spent(alpha: float, t: float, function: str) -> float:
    """``α(t)``: the two-sided error probability that may be spent by information fraction ``t`` ∈ [0, 1].

    ``kim-demets``: ``α · t^1.5`` (Kim & DeMets' power family, ρ = 1.5: spends enough at a quarter of the set
    to stop a clear finding there, and keeps the last look near the fixed-sample level); ``obrien-fleming``:
    ``2 − 2Φ(z_{1−α/2} / √t)`` (spends almost nothing early, keeps the final look closest to the fixed-sample
    level); ``pocock``: ``α · ln(1 + (e − 1)t)`` (spends evenly; stops earlier, costs most at the end)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    t = min(max(float(t), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if function == "kim-demets":
        return float(alpha * t**KIM_DEMETS_RHO)
    if function == "obrien-fleming":
        return float(2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t)))
    if function == "pocock":
        return float(alpha * math.log(1.0 + (math.e - 1.0) * t))
    raise ValueError(f"unknown spending function {function!r}; use one of {', '.join(SPENDING_FUNCTIONS)}")


@dataclass(frozen=True)
class Design:
    """Planned looks and their critical values for one probe's two-sided test at level ``alpha``."""

    fractions: tuple[float, ...]
    """Information fraction at each look (share of the forget set seen), increasing, the last = 1."""
    critical: tuple[float, ...]
    """Two-sided critical value ``c_k`` on the z scale at each look."""
    alpha: float
    function: str

    @property
    def levels(self) -> tuple[float, ...]:
        """Confidence level of the repeated interval at each look: ``2Φ(c_k) − 1``."""
        return tuple(float(2.0 * stats.norm.cdf(c) - 1.0) for c in self.critical)

    @property
    def spent(self) -> tuple[float, ...]:
        """Cumulative error spent by each look, ``α(t_k)``."""
        return tuple(spent(self.alpha, t, self.function) for t in self.fractions)

    def to_dict(self) -> dict[str, object]:
        return {
            "spending": self.function,
            "alpha": self.alpha,
            "fractions": list(self.fractions),
            "critical_z": [round(c, 6) for c in self.critical],
            "levels": [round(x, 8) for x in self.levels],
        }


def _crossing(density: np.ndarray, grid: np.ndarray, step: float, var: float, bound: float) -> float:
    """P(|S_prev + N(0, var)| ≥ bound), integrated over the sub-density of S_prev on ``grid``."""
    sd = math.sqrt(var)
    outside = stats.norm.sf((bound - grid) / sd) + stats.norm.cdf((-bound - grid) / sd)
    return float(np.sum(density * outside) * step)


def _boundary(density: np.ndarray, grid: np.ndarray, step: float, var: float, target: float, t: float) -> float:
    """The critical value ``c`` (z scale) at a look at fraction ``t`` that spends exactly ``target``."""
    if target <= 0:
        return math.inf
    if _crossing(density, grid, step, var, 1e-9) <= target:  # even a zero boundary spends less: stop here
        return 0.0
    b = optimize.brentq(
        lambda x: _crossing(density, grid, step, var, x) - target, 1e-9, 40.0 * math.sqrt(t), xtol=1e-10
    )
    return float(b) / math.sqrt(t)


def design(fractions: Sequence[float], alpha: float, function: str = DEFAULT_SPENDING) -> Design:
    """Critical values for looks at ``fractions`` (increasing, in (0, 1], the last must be 1)."""
    ts = [float(t) for t in fractions]
    if not ts or any(not 0 < t <= 1 for t in ts) or any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"looks must be increasing fractions in (0, 1], got {list(fractions)}")
    if abs(ts[-1] - 1.0) > 1e-12:
        raise ValueError(f"the last look must see every sample (fraction 1), got {ts[-1]}")
    ts[-1] = 1.0
    increments = np.diff([0.0, *(spent(alpha, t, function) for t in ts)])
    critical: list[float] = []
    grid = np.zeros(1)
    density = np.ones(1)
    step = 1.0
    previous_t = 0.0
    for k, (t, inc) in enumerate(zip(ts, increments, strict=True)):
        var = t - previous_t
        if k == 0:
            c = float(stats.norm.isf(inc / 2.0)) if inc > 0 else math.inf
        else:
            c = _boundary(density, grid, step, var, float(inc), t)
        critical.append(c)
        if k + 1 < len(ts):
            # density of S_k on the continuation region |S_k| < c √t
            bound = min(c, 12.0) * math.sqrt(t)
            new_grid = np.linspace(-bound, bound, _GRID)
            sd = math.sqrt(var)
            if k == 0:
                new_density = stats.norm.pdf(new_grid / sd) / sd
            else:
                kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / sd) / sd
                new_density = kernel @ (density * step)
            weights = np.ones(_GRID)
            weights[0] = weights[-1] = 0.5  # trapezoid rule
            grid, density, step = new_grid, new_density * weights, float(new_grid[1] - new_grid[0])
            previous_t = t
    return Design(tuple(ts), tuple(critical), float(alpha), function)


def look_sizes(n: int, fractions: Sequence[float], minimum: int) -> list[int]:
    """Samples seen at each planned look: ``ceil(t·n)``, dropping looks below ``minimum`` samples (too few for a
    verdict) and repeats; the last look is always ``n``."""
    sizes: list[int] = []
    for t in fractions:
        size = min(n, max(1, math.ceil(float(t) * n - 1e-9)))
        if size < minimum and size < n:
            continue
        if not sizes or size > sizes[-1]:
            sizes.append(size)
    if not sizes or sizes[-1] != n:
        sizes.append(n)
    return sizes
