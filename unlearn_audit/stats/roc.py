"""ROC summaries of a membership score: AUC (DeLong interval) and TPR at a fixed FPR (bootstrap interval).

Convention: a *higher* score means "more likely a member". ``positive`` holds the scores of samples whose
membership is in question (the forget set), ``negative`` the scores of samples known to be unseen (test).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .intervals import Estimate, _z


def _as_scores(scores: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(scores, dtype=float).ravel()
    if out.size == 0:
        raise ValueError(f"{name}: no scores")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: scores must be finite")
    return out


def _placements(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive, the share of negatives it beats (ties count ½), and
    for each negative, the share of positives that beat it."""
    neg_sorted = np.sort(negative)
    pos_sorted = np.sort(positive)
    below = np.searchsorted(neg_sorted, positive, side="left")
    ties = np.searchsorted(neg_sorted, positive, side="right") - below
    v10 = (below + 0.5 * ties) / negative.size
    above = positive.size - np.searchsorted(pos_sorted, negative, side="right")
    ties_n = np.searchsorted(pos_sorted, negative, side="right") - np.searchsorted(pos_sorted, negative, side="left")
    v01 = (above + 0.5 * ties_n) / positive.size
    return v10, v01


def auc(positive: np.ndarray, negative: np.ndarray, level: float = 0.95) -> Estimate:
    """Area under the ROC curve (Mann–Whitney), with DeLong's variance and a logit-scale normal interval.

    The logit transform keeps the interval inside (0, 1) and behaves better near the edges than the plain
    normal interval; when the AUC is exactly 0 or 1 the interval is one-sided up to the Hanley–McNeil bound.
    """
    pos = _as_scores(positive, "positive")
    neg = _as_scores(negative, "negative")
    v10, v01 = _placements(pos, neg)
    value = float(v10.mean())
    var = (v10.var(ddof=1) / pos.size if pos.size > 1 else 0.0) + (v01.var(ddof=1) / neg.size if neg.size > 1 else 0.0)
    z = _z(level)
    if 0.0 < value < 1.0 and var > 0:
        centre = math.log(value / (1 - value))
        half = z * math.sqrt(var) / (value * (1 - value))
        lo = 1 / (1 + math.exp(-(centre - half)))
        hi = 1 / (1 + math.exp(-(centre + half)))
    else:
        # Degenerate: perfect (or perfectly wrong) separation. Hanley–McNeil's variance at A→1 vanishes, so use
        # the exact one-sided bound of "no negative outranks any positive" given the smaller group's size.
        n = min(pos.size, neg.size)
        edge = (1 - level) ** (1.0 / n) if n > 0 else 0.0
        lo, hi = (edge, 1.0) if value >= 1.0 else (0.0, 1 - edge) if value <= 0.0 else (value, value)
    return Estimate(value, lo, hi, "delong-logit", level)


def threshold_at_fpr(negative: np.ndarray, fpr: float) -> float:
    """Smallest threshold ``t`` with ``share(negative > t) <= fpr``: a sample is called a member when ``score > t``."""
    neg = np.sort(_as_scores(negative, "negative"))
    allowed = math.floor(fpr * neg.size + 1e-9)  # negatives allowed above the threshold
    return float(neg[neg.size - 1 - allowed]) if allowed < neg.size else -math.inf


def tpr_at_fpr_point(positive: np.ndarray, negative: np.ndarray, fpr: float = 0.01) -> float:
    t = threshold_at_fpr(negative, fpr)
    return float(np.mean(np.asarray(positive, dtype=float) > t))


def tpr_at_fpr(
    positive: np.ndarray,
    negative: np.ndarray,
    fpr: float = 0.01,
    *,
    rng: np.random.Generator,
    resamples: int = 1000,
    level: float = 0.95,
) -> Estimate:
    """True-positive rate at false-positive rate ``fpr`` (threshold: the empirical (1 − fpr) quantile of the
    negatives, strict inequality), with a percentile bootstrap interval that resamples both groups.

    With ``n`` negatives, an FPR of 1 % is resolved only when ``n >= 100``; below that the threshold is the
    largest negative score (FPR 0) and the method string says so.
    """
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    pos = _as_scores(positive, "positive")
    neg = _as_scores(negative, "negative")
    value = tpr_at_fpr_point(pos, neg, fpr)
    boots = np.empty(resamples)
    for b in range(resamples):
        boots[b] = tpr_at_fpr_point(
            pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)], fpr
        )
    alpha = 1 - level
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    method = "bootstrap-percentile" + ("" if fpr * neg.size >= 1 else f" (only {neg.size} negatives: FPR 0)")
    return Estimate(value, float(lo), float(hi), method, level)


def roc_summary(
    positive: np.ndarray, negative: np.ndarray, *, rng: np.random.Generator, fpr: float = 0.01, level: float = 0.95
) -> dict[str, Estimate]:
    """``{"auc": ..., "tpr_at_1fpr": ...}`` (the key names the FPR in percent)."""
    key = f"tpr_at_{fpr * 100:g}fpr".replace(".", "_")
    return {"auc": auc(positive, negative, level), key: tpr_at_fpr(positive, negative, fpr, rng=rng, level=level)}


def mann_whitney_check(positive: np.ndarray, negative: np.ndarray) -> float:
    """AUC through scipy's Mann–Whitney U (the slow, obvious version; used by the tests)."""
    u = stats.mannwhitneyu(np.asarray(positive, float), np.asarray(negative, float), alternative="two-sided").statistic
    return float(u) / (np.size(positive) * np.size(negative))
