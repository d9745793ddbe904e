"""Who is compared with whom: the audited model's per-sample counts against the references, the null
comparisons that stand for "an honest retrain audited the same way" (leave-one-out, swap or a fixed margin), and
the bands they give. :mod:`unlearn_audit.analysis` turns these into estimates and verdicts (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .policy import Band
from .stats.intervals import Estimate


def band_from(estimates: list[Estimate], floor: float, method: str) -> Band:
    lo = min(e.lo for e in estimates)
    hi = max(e.hi for e in estimates)
    values, measured = tuple(e.value for e in estimates), spread_measured(method)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Band(float("nan"), float("nan"), method + " (undefined)", values, measured)
    return Band(min(lo, 1.0 / (1.0 + floor)), max(hi, 1.0 + floor), method, values, measured)


def margin_band(margin: float, method: str) -> Band:
    return Band(1.0 / (1.0 + margin), 1.0 + margin, method, spread_measured=False)


def spread_measured(null_method: str) -> bool:
    """Only a leave-one-out over K ≥ 2 references measures how far honest retrains spread; a margin guesses it."""
    return null_method.startswith("leave-one-out")


def remedy(null_method: str) -> str:
    if "not crafted" in null_method:
        return "craft the adversarial inputs on the references too (the default)"
    return "add a second retrained reference (--reference)"


@dataclass
class Series:
    """Per-sample counts for one 'model under test' against its comparison models on the same rows."""

    u: np.ndarray  # [N, T]
    v: np.ndarray  # [K, N, T]
    d: np.ndarray  # [K, N, T]


def _check_evaluated(counts: Any, block: int, models: list[int]) -> None:
    if counts.evaluated is not None and not counts.evaluated[block, models].all():
        raise RuntimeError(f"{counts.probe}: counts needed for this comparison were not computed")


def subject_series(counts: Any, subject: int) -> Series:
    refs = list(counts.references)
    a = counts.block(subject)
    _check_evaluated(counts, a, [subject, *refs])
    return Series(counts.correct[a, subject], counts.correct[a][refs], counts.disagree[a][refs])


def null_series(counts: Any, subject: int) -> tuple[list[Series], str]:
    """Comparisons that stand for "an honest retrain audited the same way"."""
    refs = list(counts.references)
    if len(refs) >= 2:
        if counts.adversarial and any(k not in counts.crafted_on for k in refs):
            return [], "fixed margin (adversarial inputs were not crafted on the references)"
        out = []
        for k in refs:
            b = counts.block(k)
            others = [j for j in refs if j != k]
            _check_evaluated(counts, b, [k, *others])
            out.append(Series(counts.correct[b, k], counts.correct[b][others], counts.disagree[b][others]))
        return out, f"leave-one-out over {len(refs)} references"
    if len(refs) == 1 and counts.adversarial and refs[0] in counts.crafted_on:
        b = counts.block(refs[0])
        _check_evaluated(counts, b, [refs[0], subject])
        swap = Series(counts.correct[b, refs[0]], counts.correct[b][[subject]], counts.disagree[b][[subject]])
        return [swap], "swap with the audited model (one reference: seed spread unmeasured, margin added)"
    return [], "fixed margin (one reference: the seed-to-seed spread of retraining is unmeasured)"
