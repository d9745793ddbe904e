"""Avg Gap (paper's Table 1): the mean absolute difference to the retrained reference over
{Retain Acc, Unlearn Acc, Test Acc, MIA}. We keep fractions (0–1); the paper prints percentage points, so
multiply by 100 to put our number beside its table.

With K references the reference value of each component is the references' mean. The interval is a parametric
bootstrap: each component (the model's and each reference's) is drawn from a normal with the standard error
implied by its Wilson interval, and the mean |Δ| is recomputed; the 2.5 / 97.5 % quantiles form the interval.
"""

from __future__ import annotations

import numpy as np

from ..stats import Estimate
from ..stats.intervals import _z

COMPONENTS = ("retain_acc", "unlearn_acc", "test_acc", "mia_svc_unseen")
RESAMPLES = 4000


def _se(e: Estimate) -> float:
    return max(0.0, (e.hi - e.lo) / (2 * _z(e.level)))


def avg_gap(
    subject: dict[str, Estimate | None], references: list[dict[str, Estimate | None]], *, seed: int, level: float = 0.95
) -> tuple[Estimate | None, str | None]:
    """``(estimate, None)``, or ``(None, reason)`` when a component is missing."""
    if not references:
        return None, "no reference to compare with"
    missing = [c for c in COMPONENTS if subject.get(c) is None or any(r.get(c) is None for r in references)]
    if missing:
        return None, f"needs {', '.join(missing)} (the paper averages all four components)"
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xA6A9,)))
    gaps = []
    draws = np.zeros(RESAMPLES)
    for c in COMPONENTS:
        mine = subject[c]
        theirs = [r[c] for r in references]
        assert mine is not None and all(t is not None for t in theirs)  # narrowed by the check above
        ref_value = float(np.mean([t.value for t in theirs]))  # type: ignore[union-attr]
        ref_se = float(np.sqrt(np.sum([_se(t) ** 2 for t in theirs]))) / len(theirs)  # type: ignore[arg-type]
        gaps.append(abs(mine.value - ref_value))
        draws += np.abs(rng.normal(mine.value, _se(mine), RESAMPLES) - rng.normal(ref_value, ref_se, RESAMPLES))
    draws /= len(COMPONENTS)
    alpha = 1 - level
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    value = float(np.mean(gaps))
    return Estimate(value, float(min(lo, value)), float(max(hi, value)), "parametric-bootstrap", level), None
