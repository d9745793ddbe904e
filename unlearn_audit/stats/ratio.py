"""Residual-knowledge ratio and its companions (SPEC §3), for one audited model, one probe, a τ grid.

Notation (per forget sample i and τ, from ``c`` shared draws): ``u_i`` = draws the audited model classifies
correctly, ``v_ki`` = the same for reference k, ``v̄_i`` = mean over references, ``d_ki`` = draws on which
the audited model and reference k disagree.

* ``R_τ = Σu / Σv̄`` (ratio of means, primary; ours),
* the paper's ``r_τ`` = mean over samples with ``v̄ > 0`` of ``u / v̄``, with the count of undefined samples,
* ``p_m = Σu / (cN)``, ``p_a = Σv̄ / (cN)``,
* the share of samples with ``u > v̄`` (Wilson interval: one Bernoulli per sample),
* the empirical disagreement ``Pr[m(x') ≠ a(x')]`` and the rebuilt Lemma A.4 bounds
  ``|R − 1|·q ≤ E[k] ≤ min(1, 2 − (1 + R)·q)`` per reference (averaged over references).

Intervals resample forget samples (bootstrap; percentile or BCa), so draws of one sample stay together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bootstrap import interval
from .intervals import Estimate, wilson


@dataclass(frozen=True)
class TauStatistics:
    tau: float
    R: Estimate
    r_paper: Estimate
    n_undefined: int
    p_m: Estimate
    p_a: Estimate
    frac_u_gt_v: Estimate
    disagreement: Estimate
    bound_lower: Estimate
    bound_upper: Estimate


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def ratio_of_means(
    u: np.ndarray, v: np.ndarray, weights: np.ndarray, level: float = 0.95, method: str = "bca"
) -> Estimate:
    """``R = Σu / Σv`` with a bootstrap interval. ``u``, ``v``: per-sample totals ``[N]``."""
    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    estimate = float(_safe_div(np.array(u.sum()), np.array(v.sum())))
    replicates = _safe_div(weights @ u, weights @ v)

    def jackknife() -> np.ndarray:
        return _safe_div(u.sum() - u, v.sum() - v)

    return interval(estimate, replicates, level, method, jackknife)


def excess_rate(
    u: np.ndarray, v: np.ndarray, trials: int, weights: np.ndarray, level: float = 0.95, method: str = "bca"
) -> Estimate:
    """``D = (Σu − Σv) / (N·trials)``: how much more often than the reference the model recognises a draw.

    The statistic for a forget set that is a whole class the references never learned (``Σv ≈ 0``), where the
    ratio ``R`` is undefined. ``u``, ``v``: per-sample totals ``[N]`` over ``trials`` draws each."""
    diff = np.asarray(u, dtype=float) - np.asarray(v, dtype=float)
    n = diff.shape[0]
    estimate = float(diff.sum() / (n * trials)) if n else float("nan")
    replicates = (weights @ diff) / (n * trials)

    def jackknife() -> np.ndarray:
        return (diff.sum() - diff) / ((n - 1) * trials) if n > 1 else np.full(n, np.nan)

    return interval(estimate, replicates, level, method, jackknife)


def mean_of_ratios(u: np.ndarray, v: np.ndarray, weights: np.ndarray, level: float = 0.95) -> tuple[Estimate, int]:
    """The paper's estimator: mean of per-sample ``u/v`` over samples with ``v > 0``; returns (estimate, #undefined)."""
    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    defined = v > 0
    ratios = np.where(defined, u / np.where(defined, v, 1.0), 0.0)
    n_def = int(defined.sum())
    estimate = float(ratios[defined].mean()) if n_def else float("nan")
    replicates = _safe_div(weights @ ratios, weights @ defined.astype(float))
    return interval(estimate, replicates, level, "percentile"), int((~defined).sum())


def tau_statistics(
    taus: np.ndarray,
    u: np.ndarray,
    v_refs: np.ndarray,
    disagree: np.ndarray,
    draws: int,
    weights: np.ndarray,
    level: float = 0.95,
    method: str = "bca",
) -> list[TauStatistics]:
    """All per-τ statistics. ``u``: ``[N, T]``; ``v_refs``, ``disagree``: ``[K, N, T]``; ``weights``: ``[B, N]``."""
    u = np.asarray(u, dtype=float)
    v_refs = np.asarray(v_refs, dtype=float)
    disagree = np.asarray(disagree, dtype=float)
    k, n, n_tau = v_refs.shape
    if u.shape != (n, n_tau) or disagree.shape != v_refs.shape:
        raise ValueError(f"shape mismatch: u {u.shape}, v_refs {v_refs.shape}, disagree {disagree.shape}")
    v_bar = v_refs.mean(axis=0)
    trials = draws * n
    boot_n = weights.sum(axis=1, keepdims=True)  # = n for every replicate
    boot_u = weights @ u  # [B, T]
    boot_v = np.stack([weights @ v_refs[j] for j in range(k)])  # [K, B, T]
    boot_d = np.stack([weights @ disagree[j] for j in range(k)])
    out = []
    for t in range(n_tau):
        ut, vt = u[:, t], v_bar[:, t]
        R = ratio_of_means(ut, vt, weights, level, method)
        r_paper, n_undef = mean_of_ratios(ut, vt, weights, level)
        pm_rep = boot_u[:, t] / (draws * boot_n[:, 0])
        q_rep = boot_v[:, :, t] / (draws * boot_n[:, 0])  # [K, B]
        pa_rep = q_rep.mean(axis=0)
        p_m = float(ut.sum() / trials)
        q = v_refs[:, :, t].sum(axis=1) / trials  # [K]
        p_a = float(q.mean())
        d = float(disagree[:, :, t].sum(axis=1).mean() / trials)
        d_rep = boot_d[:, :, t].mean(axis=0) / (draws * boot_n[:, 0])
        # Lemma A.4 (rebuilt), per reference: |r_k - 1| q_k = |p_m - q_k| and 2 - (1 + r_k) q_k = 2 - p_m - q_k.
        lower = float(np.mean(np.abs(p_m - q)))
        upper = float(np.mean(np.minimum(1.0, 2.0 - p_m - q)))
        lower_rep = np.mean(np.abs(pm_rep[None, :] - q_rep), axis=0)
        upper_rep = np.mean(np.minimum(1.0, 2.0 - pm_rep[None, :] - q_rep), axis=0)
        out.append(
            TauStatistics(
                tau=float(taus[t]),
                R=R,
                r_paper=r_paper,
                n_undefined=n_undef,
                p_m=interval(p_m, pm_rep, level, "percentile"),
                p_a=interval(p_a, pa_rep, level, "percentile"),
                frac_u_gt_v=wilson(int((ut > vt).sum()), n, level),
                disagreement=interval(d, d_rep, level, "percentile"),
                bound_lower=interval(lower, lower_rep, level, "percentile"),
                bound_upper=interval(upper, upper_rep, level, "percentile"),
            )
        )
    return out


def class_matching_weights(target_labels: np.ndarray, pool_labels: np.ndarray) -> np.ndarray:
    """Weights on ``pool`` rows so that its class mix matches ``target``'s (mean weight 1 over used rows).

    Classes of the target absent from the pool raise ``ValueError`` (the caller turns it into an input error).
    """
    target_labels = np.asarray(target_labels)
    pool_labels = np.asarray(pool_labels)
    classes, target_counts = np.unique(target_labels, return_counts=True)
    weights = np.zeros(pool_labels.shape[0])
    missing = [int(c) for c in classes if not np.any(pool_labels == c)]
    if missing:
        raise ValueError(f"the holdout set has no samples of class(es) {missing} present in the forget set")
    share = target_counts / target_counts.sum()
    for c, s in zip(classes, share, strict=True):
        rows = pool_labels == c
        weights[rows] = s / rows.sum()
    return weights * (weights > 0).sum() / weights.sum()
