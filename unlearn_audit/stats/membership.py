"""Reference-calibrated per-sample membership test (ours): offline LiRA with retrained references as the
"OUT" shadow models.

For a forget sample ``(x, y)`` every retrained reference ``a_1 … a_K`` is a model that never trained on it.
LiRA scores a model on a sample by its logit-scaled confidence ``φ = log p_y − log(1 − p_y)`` (computed from
the logits as ``z_y − logsumexp(z_{≠y})``, which is stable where ``p_y`` rounds to 1). Offline LiRA fits a
Gaussian to the OUT models' ``φ`` on that sample and asks how far above it the target model sits.

With K = 2 … 4 references a per-sample variance is hopeless on its own, and LiRA's "fixed variance" (one
variance pooled over all samples) is miscalibrated where samples differ. We use the standard middle road
for many small-sample variances, the empirical-Bayes moderated variance of Smyth (2004, limma): each sample's
variance is shrunk toward a prior fitted to all samples, with prior degrees of freedom ``d0`` estimated from
the spread of the log-variances. The audited model's ``φ`` is then compared with the *predictive* distribution
of one more reference, ``μ_i + σ̃_i·√(1 + 1/K)·t_{K−1+d0}``, one-sided (more confident than a retrain = evidence
of membership). Under H0 "m behaves on this sample like one more retrain", the p-values are uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

#: φ is clipped to ±CLIP so a saturated softmax (float32 logit gaps beyond ~100) does not dominate the variance.
CLIP = 30.0


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``φ = z_y − logsumexp_{j≠y} z_j`` per row (= log p_y − log(1 − p_y)), clipped to ±30."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits {z.shape} and labels {y.shape} do not match")
    rows = np.arange(z.shape[0])
    true = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    return np.clip(true - special.logsumexp(others, axis=1), -CLIP, CLIP)


def true_class_probability(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax probability of the true class (the paper's MIA feature)."""
    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(z.shape[0])
    return np.exp(z[rows, np.asarray(labels, dtype=np.int64)] - special.logsumexp(z, axis=1))


def moderated_variance_prior(variances: np.ndarray, df: int) -> tuple[float, float]:
    """Smyth's (2004) moment estimates ``(s0², d0)`` of the scaled-inverse-χ² prior of per-sample variances.

    ``log s_i²`` has variance ``ψ'(df/2) + ψ'(d0/2)``; solving for ``d0`` from the observed spread. When the
    observed spread is no larger than sampling noise alone, ``d0 = ∞`` (every sample shares one variance).
    """
    s2 = np.asarray(variances, dtype=float)
    s2 = s2[np.isfinite(s2) & (s2 > 0)]
    if s2.size < 3:
        pooled = float(s2.mean()) if s2.size else 1.0
        return pooled, math.inf
    logs = np.log(s2)
    e = logs - special.digamma(df / 2) + math.log(df / 2)
    excess = float(np.var(e, ddof=1)) - float(special.polygamma(1, df / 2))
    if excess <= 1e-8:
        return float(np.exp(e.mean())), math.inf
    # ψ'(d0/2) = excess; ψ' is decreasing on (0, ∞)
    d0 = 2 * optimize.brentq(lambda h: float(special.polygamma(1, h)) - excess, 1e-6, 1e7)
    s0 = math.exp(float(e.mean()) + special.digamma(d0 / 2) - math.log(d0 / 2))
    return s0, d0


@dataclass(frozen=True)
class MembershipTest:
    """Per-sample outcome of the reference-calibrated test (arrays aligned with the samples given)."""

    score: np.ndarray
    """Moderated t statistic: how many predictive standard deviations m's φ sits above the references'."""
    p_value: np.ndarray
    """One-sided p-value of H0 "m is one more retrain on this sample"."""
    p_adjusted: np.ndarray
    """Benjamini–Hochberg adjusted p-values across the samples."""
    reference_mean: np.ndarray
    reference_sd: np.ndarray
    prior_scale: float
    """s0²: the prior (typical) variance of φ across retrains."""
    prior_df: float
    """d0: the prior's degrees of freedom (∞: one variance shared by every sample)."""
    df: float
    references: int

    def flagged(self, fdr: float) -> np.ndarray:
        return self.p_adjusted <= fdr


def reference_calibrated_test(subject_phi: np.ndarray, reference_phi: np.ndarray) -> MembershipTest:
    """Offline-LiRA test of ``subject_phi`` [n] against ``reference_phi`` [K, n] (K ≥ 2 references)."""
    subject = np.asarray(subject_phi, dtype=float)
    refs = np.asarray(reference_phi, dtype=float)
    if refs.ndim != 2 or refs.shape[1] != subject.shape[0]:
        raise ValueError(f"reference scores {refs.shape} do not match {subject.shape[0]} samples")
    k = refs.shape[0]
    if k < 2:
        raise ValueError("the reference-calibrated test needs at least two references")
    mu = refs.mean(axis=0)
    s2 = refs.var(axis=0, ddof=1)
    s0, d0 = moderated_variance_prior(s2, k - 1)
    if math.isinf(d0):
        var = np.full_like(s2, s0)
        df = math.inf
    else:
        var = ((k - 1) * s2 + d0 * s0) / (k - 1 + d0)
        df = k - 1 + d0
    var = np.maximum(var, 1e-12)
    sd = np.sqrt(var)
    score = (subject - mu) / (sd * math.sqrt(1 + 1 / k))
    p = stats.norm.sf(score) if math.isinf(df) else stats.t.sf(score, df)
    return MembershipTest(
        score=score,
        p_value=p,
        p_adjusted=stats.false_discovery_control(p),
        reference_mean=mu,
        reference_sd=sd,
        prior_scale=s0,
        prior_df=d0,
        df=df,
        references=k,
    )


def score_against(subject_phi: np.ndarray, reference_phi: np.ndarray, like: MembershipTest) -> np.ndarray:
    """Scores of other samples (e.g. test-set negatives for a ROC curve) under ``like``'s fitted variance prior."""
    refs = np.asarray(reference_phi, dtype=float)
    k = refs.shape[0]
    mu = refs.mean(axis=0)
    if math.isinf(like.prior_df):
        var = np.full(mu.shape, like.prior_scale)
    else:
        s2 = refs.var(axis=0, ddof=1)
        var = ((k - 1) * s2 + like.prior_df * like.prior_scale) / (k - 1 + like.prior_df)
    return (np.asarray(subject_phi, dtype=float) - mu) / (np.sqrt(np.maximum(var, 1e-12)) * math.sqrt(1 + 1 / k))
