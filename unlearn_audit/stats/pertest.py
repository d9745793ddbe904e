"""Per-sample evidence: does the audited model recognise *this* sample's neighbourhood more often than the
references? One-sided exact conditional test per sample; the callers adjust across samples with
Benjamini–Hochberg, ``scipy.stats.false_discovery_control``."""

from __future__ import annotations

import numpy as np
from scipy import stats


def one_sided_exact(u: np.ndarray, v_total: np.ndarray, trials_m: int, trials_ref: int) -> np.ndarray:
    """p-values of H0 "the audited model is correct no more often than the references" per sample.

    Conditional (Fisher) test on the 2×2 table [[u, trials_m − u], [v, trials_ref − v]]: under H0 with a
    common success probability, ``u`` given ``u + v`` is hypergeometric. The draws are shared between the
    models (paired); positive correlation between their outcomes makes this unpaired test conservative.
    """
    u = np.asarray(u, dtype=np.int64)
    v_total = np.asarray(v_total, dtype=np.int64)
    successes = u + v_total
    return stats.hypergeom.sf(u - 1, trials_m + trials_ref, successes, trials_m)


def retraining_dispersion(v_refs: np.ndarray, trials: int) -> float:
    """Intra-class correlation ρ of per-sample recognition rates across retrained references.

    Model: each retrain's rate on sample i is drawn with mean μ_i and variance ρ·μ_i(1 − μ_i); its count is
    binomial on ``trials`` draws, so Var(rate) = μ(1 − μ)[ρ + (1 − ρ)/n]. Moment estimator, pooled over all
    samples as a ratio of sums: s_i² (between-reference variance, unbiased) over m_i(1 − m_i) + s_i²/K (an
    unbiased estimate of μ_i(1 − μ_i)). ρ near 1 means a sample's neighbourhood is recognised all-or-nothing
    depending on the retraining seed; the calibrated test must allow for that.
    """
    v_refs = np.asarray(v_refs, dtype=float)
    k = v_refs.shape[0]
    if k < 2:
        raise ValueError("the dispersion of retraining needs at least two references")
    rates = v_refs / trials
    m = rates.mean(axis=0)
    s2 = rates.var(axis=0, ddof=1)
    total = float(np.sum(m * (1 - m) + s2 / k))
    if total <= 0:
        return 0.5
    ratio = float(np.sum(s2)) / total
    rho = (ratio - 1.0 / trials) / (1.0 - 1.0 / trials) if trials > 1 else ratio
    return float(np.clip(rho, 1e-4, 0.98))


def calibrated_test(
    u: np.ndarray, v_refs: np.ndarray, trials: int, rho: float | None = None, grid: int = 200, chunk: int = 2048
) -> tuple[np.ndarray, float]:
    """Posterior-predictive p-values of H0 "the audited model behaves on this sample like one more retrain".

    Hierarchical model: retrain j's rate on sample i is Beta(μ_i φ, (1 − μ_i) φ) with φ = 1/ρ − 1, its count
    binomial on ``trials`` draws, so the K reference counts are beta-binomial given μ_i. With a uniform prior on
    μ_i (on a grid), the p-value is P(U ≥ u_i) under the posterior predictive of one more retrain. ρ comes from
    :func:`retraining_dispersion` (K ≥ 2) or is given. With high ρ and few references, small p-values are
    impossible by design: a sample that three retrains all fail on is still recognised by a fourth with
    non-negligible probability. Returns (p-values, ρ used).
    """
    u = np.asarray(u, dtype=np.int64)
    v_refs = np.asarray(v_refs, dtype=np.int64)
    rho = retraining_dispersion(v_refs, trials) if rho is None else float(rho)
    phi = 1.0 / rho - 1.0
    mus = (np.arange(grid) + 0.5) / grid
    a, b = mus * phi, (1 - mus) * phi
    # P(U >= u | μ) for every u in 0..trials and grid point: [trials + 1, grid], summed from the top of the
    # closed-form pmf (scipy's betabinom.sf sums pmfs one element at a time: ~100× slower, same values to 1e-12)
    pmf = np.exp(stats.betabinom.logpmf(np.arange(trials + 1)[:, None], trials, a[None, :], b[None, :]))
    tail = np.minimum(np.cumsum(pmf[::-1], axis=0)[::-1], 1.0)
    out = np.empty(u.shape[0])
    for start in range(0, u.shape[0], chunk):
        block = v_refs[:, start : start + chunk]  # [K, n]
        loglik = stats.betabinom.logpmf(block[:, :, None], trials, a[None, None, :], b[None, None, :]).sum(axis=0)
        loglik -= loglik.max(axis=1, keepdims=True)
        post = np.exp(loglik)
        post /= post.sum(axis=1, keepdims=True)  # [n, grid]
        out[start : start + chunk] = np.einsum("ng,ng->n", post, tail[u[start : start + chunk]])
    return np.clip(out, 0.0, 1.0), rho
