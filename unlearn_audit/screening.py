"""Reference-free screening: the audited model on its forget samples against class-matched holdout samples it
never trained on (``R_proxy``), with a split-half null band. It can only flag residual knowledge, never pass a
model (SPEC: screening mode). numpy only; the orchestration lives in ``audit.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .analysis import StatsSettings, format_value, stats_rng, tau_mask
from .policy import Band, Policy, Verdict, VerdictKind
from .stats.bootstrap import bootstrap_weights, interval
from .stats.intervals import Estimate
from .stats.ratio import class_matching_weights


@dataclass(frozen=True)
class ScreeningAnalysis:
    name: str
    taus: list[dict[str, Any]]
    pooled: Estimate
    band: Band
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "taus": self.taus,
            "R_proxy_pooled": self.pooled.to_dict(),
            "null_band": self.band.to_dict(),
            "verdict": self.verdict.to_dict(),
        }


def analyse_screening(
    forget: Any,
    holdout: Any,
    forget_labels: np.ndarray,
    holdout_labels: np.ndarray,
    policy: Policy,
    settings: StatsSettings,
    verdict_level: float,
    splits: int = 400,
) -> ScreeningAnalysis:
    """R_proxy = p_m(forget neighbourhoods) / p_m(class-matched holdout neighbourhoods), with a split-half null."""
    taus = np.asarray(forget.taus, dtype=float)
    mask = tau_mask(taus, policy)
    cw = class_matching_weights(forget_labels, holdout_labels)
    uf = forget.correct[0, 0].astype(float)
    uh = holdout.correct[0, 0].astype(float)
    nf, nh = uf.shape[0], uh.shape[0]
    wf = bootstrap_weights(stats_rng(settings, forget.probe, "screen-forget"), nf, settings.bootstrap)
    wh = bootstrap_weights(stats_rng(settings, forget.probe, "screen-holdout"), nh, settings.bootstrap) * cw

    def proxy(a: np.ndarray, b: np.ndarray, level: float) -> Estimate:
        est = (a.sum() / nf) / ((cw * b).sum() / cw.sum()) if (cw * b).sum() > 0 else float("nan")
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = ((wf @ a) / nf) / ((wh @ b) / wh.sum(axis=1))
        return interval(float(est), reps, level, "percentile")

    rows = []
    for t in range(len(taus)):
        e = proxy(uf[:, t], uh[:, t], settings.level)
        rows.append(
            {
                "tau": float(taus[t]),
                "R_proxy": e.to_dict(),
                "p_m_forget": float(uf[:, t].sum() / (nf * forget.draws)),
                "p_m_holdout": float((cw * uh[:, t]).sum() / (cw.sum() * holdout.draws)),
            }
        )
    a, b = uf[:, mask].sum(axis=1), uh[:, mask].sum(axis=1)
    pooled = proxy(a, b, verdict_level)
    # split-half null: two class-stratified halves of the holdout against each other
    rng = stats_rng(settings, forget.probe, "screen-split")
    used = np.flatnonzero(cw > 0)
    ratios = []
    for _ in range(splits):
        half = np.zeros(nh, dtype=bool)
        for c in np.unique(holdout_labels[used]):
            rows_c = used[holdout_labels[used] == c]
            half[rng.permutation(rows_c)[: len(rows_c) // 2]] = True
        w1, w2 = cw * half, cw * (~half & (cw > 0))
        if (w2 * b).sum() > 0 and w1.sum() > 0:
            ratios.append(((w1 * b).sum() / w1.sum()) / ((w2 * b).sum() / w2.sum()))
    alpha = 1 - verdict_level
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2]) if ratios else (np.nan, np.nan)
    band = Band(float(lo), float(hi), f"holdout split against itself ({len(ratios)} class-stratified half splits)")
    threshold = max(band.hi, 1.0 + policy.screening_margin)
    if nf < policy.min_samples:
        kind: VerdictKind = "inconclusive"
        reason = f"screening: only {nf} forget samples; too few."
    elif math.isfinite(pooled.lo) and pooled.lo > threshold:
        kind = "residual_knowledge"
        reason = (
            f"screening ({forget.probe}): the model recognises perturbed forget samples R_proxy = {format_value(pooled.value)} "
            f"[{format_value(pooled.lo)}, {format_value(pooled.hi)}] times as often as unseen holdout samples of the same classes, above "
            f"both the holdout's split-half range [{format_value(band.lo)}, {format_value(band.hi)}] and 1 + {policy.screening_margin}."
        )
    else:
        kind = "inconclusive"
        reason = (
            f"screening ({forget.probe}): R_proxy = {format_value(pooled.value)} [{format_value(pooled.lo)}, {format_value(pooled.hi)}] is not "
            f"strong evidence (needs a lower bound above {format_value(threshold)}); without a retrained reference this test "
            "cannot pass a model."
        )
    return ScreeningAnalysis(forget.probe, rows, pooled, band, Verdict(kind, reason, {"R_proxy": pooled.to_dict()}))
