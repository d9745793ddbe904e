"""Pure statistics: intervals, ratio estimators, bounds, per-sample tests. Coverage is simulated."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from unlearn_audit.stats import clopper_pearson, wilson
from unlearn_audit.stats.bootstrap import bootstrap_weights
from unlearn_audit.stats.pertest import calibrated_test, one_sided_exact, retraining_dispersion
from unlearn_audit.stats.ratio import (
    class_matching_weights,
    excess_rate,
    mean_of_ratios,
    ratio_of_means,
    tau_statistics,
)

STATS_DIR = Path(__file__).resolve().parents[2] / "unlearn_audit" / "stats"


def test_stats_never_imports_torch():
    for path in STATS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "torch" or n.startswith("torch.") for n in names), path


def test_wilson_known_values():
    e = wilson(81, 263)
    assert (round(e.lo, 4), round(e.hi, 4)) == (0.2553, 0.3662)  # Newcombe (1998) example
    assert wilson(0, 10).lo == 0.0 and wilson(10, 10).hi == 1.0
    cp = clopper_pearson(5, 20)
    assert cp.lo == pytest.approx(sps.beta.ppf(0.025, 5, 16)) and cp.hi == pytest.approx(sps.beta.ppf(0.975, 6, 15))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """The slow, obvious Benjamini–Hochberg step-up adjustment (what the package computed before it used
    ``scipy.stats.false_discovery_control``): sort, scale the i-th smallest by m/i, running minimum from the top."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        running = min(running, p[order[rank - 1]] * m / rank)
        adjusted[order[rank - 1]] = running
    return adjusted


def test_benjamini_hochberg_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    assert np.allclose(sps.false_discovery_control(p), [0.025, 0.05, 0.05, 0.025, 0.5])
    assert np.allclose(benjamini_hochberg(p), [0.025, 0.05, 0.05, 0.025, 0.5])
    assert sps.false_discovery_control(np.array([])).size == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1e-300, 1e-12, 0.01, 0.05, 1.0])), max_size=300))
def test_scipy_false_discovery_control_is_benjamini_hochberg(values):
    """scipy multiplies p by (m/i) where the plain version computes p·m/i: the same adjustment up to rounding
    (at most 2 units in the last place), and ties get one value."""
    p = np.asarray(values, dtype=float)
    ours = sps.false_discovery_control(p)
    np.testing.assert_array_max_ulp(ours, benjamini_hochberg(p), maxulp=2)
    for value in np.unique(p):
        assert np.unique(ours[p == value]).size == 1


def test_exact_test_is_fisher_one_sided():
    for u, v, n_m, n_r in [(18, 10, 20, 40), (5, 30, 20, 40), (20, 0, 20, 20)]:
        expected = sps.fisher_exact([[u, n_m - u], [v, n_r - v]], alternative="greater").pvalue
        assert one_sided_exact(np.array([u]), np.array([v]), n_m, n_r)[0] == pytest.approx(expected)


def _simulate(rng, n, draws, mean_m, mean_a, conc=4.0, k=1):
    """Per-sample rates from Beta distributions with known means; counts binomial on shared draws."""
    p_m = rng.beta(mean_m * conc, (1 - mean_m) * conc, n)
    p_a = rng.beta(mean_a * conc, (1 - mean_a) * conc, (k, n))
    u = rng.binomial(draws, p_m)
    v = rng.binomial(draws, p_a)
    return u, v


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_ratio_interval_coverage(method):
    """Nominal 95 % intervals for R = E[u]/E[v] cover 93–97 % of the time (1,000 simulated audits)."""
    rng = np.random.default_rng(1234)
    truth = 0.8 / 0.7
    hits = 0
    reps = 1000
    for _ in range(reps):
        u, v = _simulate(rng, 150, 20, 0.8, 0.7)
        w = bootstrap_weights(rng, 150, 1000)
        est = ratio_of_means(u, v[0], w, 0.95, method)
        hits += est.lo <= truth <= est.hi
    assert 0.93 <= hits / reps <= 0.97, hits / reps


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_excess_rate_interval_coverage(method):
    """The whole-class statistic D = p_m − p_ā: nominal 95 % intervals cover 93–97 % (references near zero)."""
    rng = np.random.default_rng(4321)
    hits, reps = 0, 1000
    for _ in range(reps):
        u, v = _simulate(rng, 150, 20, 0.3, 0.005)
        w = bootstrap_weights(rng, 150, 1000)
        est = excess_rate(u, v[0], 20, w, 0.95, method)
        hits += est.lo <= 0.3 - 0.005 <= est.hi
    assert 0.93 <= hits / reps <= 0.97, hits / reps


def test_excess_rate_known_value():
    u, v = np.array([10, 0, 5]), np.array([0, 0, 1])
    est = excess_rate(u, v, 10, bootstrap_weights(np.random.default_rng(0), 3, 500), 0.95, "percentile")
    assert est.value == pytest.approx(14 / 30)
    assert est.lo <= est.value <= est.hi


def test_proportion_interval_coverage():
    """p_m (bootstrap over samples) and the share of u > v̄ (Wilson) both cover 93–97 %."""
    rng = np.random.default_rng(99)
    reps, n, draws = 1000, 150, 20
    hits_pm = hits_share = 0
    taus = np.array([0.0])
    # truth for the share: P(u > v) under the simulation model, estimated once by a large simulation
    u_big, v_big = _simulate(np.random.default_rng(0), 400_000, draws, 0.75, 0.7)
    share_truth = float(np.mean(u_big > v_big[0]))
    for _ in range(reps):
        u, v = _simulate(rng, n, draws, 0.75, 0.7)
        w = bootstrap_weights(rng, n, 1000)
        row = tau_statistics(
            taus, u[:, None], v[:, :, None], np.zeros_like(v[:, :, None]), draws, w, 0.95, "percentile"
        )[0]
        hits_pm += row.p_m.lo <= 0.75 <= row.p_m.hi
        hits_share += row.frac_u_gt_v.lo <= share_truth <= row.frac_u_gt_v.hi
    assert 0.93 <= hits_pm / reps <= 0.97, hits_pm / reps
    assert 0.93 <= hits_share / reps <= 0.97, hits_share / reps


def test_paper_estimator_and_undefined_count():
    u = np.array([10, 5, 3, 0])
    v = np.array([5, 5, 0, 0])
    w = bootstrap_weights(np.random.default_rng(0), 4, 200)
    est, undefined = mean_of_ratios(u, v, w)
    assert undefined == 2 and est.value == pytest.approx((2.0 + 1.0) / 2)
    # the SPEC's point: a never-unlearned model can read 1.00 on the paper's estimator and > 1 on R
    u2, v2 = np.array([10, 10, 10]), np.array([10, 10, 0])
    assert mean_of_ratios(u2, v2, w[:, :3])[0].value == 1.0
    assert ratio_of_means(u2, v2, w[:, :3]).value == pytest.approx(1.5)


def _consistent_counts(draw_outcomes):
    """Counts derived from explicit per-draw predictions, so identities can be checked exactly."""
    m_correct, a_correct, disagree = draw_outcomes
    return m_correct.sum(axis=1), a_correct.sum(axis=1), disagree.sum(axis=1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_bounds_always_contain_measured_disagreement(n, draws, seed):
    rng = np.random.default_rng(seed)
    classes = 4
    y = rng.integers(0, classes, (n, 1))
    pred_m = np.where(rng.random((n, draws)) < 0.7, y, rng.integers(0, classes, (n, draws)))
    pred_a = np.where(rng.random((n, draws)) < 0.6, y, rng.integers(0, classes, (n, draws)))
    u, v, d = _consistent_counts((pred_m == y, pred_a == y, pred_m != pred_a))
    w = bootstrap_weights(rng, n, 200)
    row = tau_statistics(np.array([0.1]), u[:, None], v[None, :, None], d[None, :, None], draws, w, 0.95, "percentile")[
        0
    ]
    assert row.bound_lower.value - 1e-12 <= row.disagreement.value <= row.bound_upper.value + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 30)), min_size=2, max_size=40), st.integers(0, 1000))
def test_ratio_estimator_properties(pairs, seed):
    u = np.array([p[0] for p in pairs])
    v = np.array([p[1] for p in pairs])
    w = bootstrap_weights(np.random.default_rng(seed), len(pairs), 300)
    est = ratio_of_means(u, v, w, 0.95, "percentile")
    assert est.value == pytest.approx(u.sum() / v.sum())
    assert est.lo <= est.value + 1e-9 and est.value - 1e-9 <= est.hi or not np.isfinite(est.lo)
    perm = np.random.default_rng(seed).permutation(len(pairs))
    assert ratio_of_means(u[perm], v[perm], w).value == pytest.approx(est.value)
    swapped = ratio_of_means(v, np.maximum(u, 0), w).value
    if u.sum() > 0:
        assert swapped == pytest.approx(1 / est.value)


def test_class_matching_weights():
    target = np.array([0, 0, 1])
    pool = np.array([0, 1, 1, 1, 2])
    w = class_matching_weights(target, pool)
    assert w[4] == 0 and w[0] == pytest.approx(2 * 3 * w[1])
    with pytest.raises(ValueError, match=r"class\(es\) \[3\]"):
        class_matching_weights(np.array([3]), pool)


def _retrains(rng, mu, rho, trials, k):
    phi = 1 / rho - 1
    return np.stack([rng.binomial(trials, rng.beta(mu * phi, (1 - mu) * phi)) for _ in range(k)])


def test_retraining_dispersion_is_unbiased():
    rng = np.random.default_rng(3)
    for rho in (0.1, 0.5, 0.8):
        estimates = [retraining_dispersion(_retrains(rng, rng.beta(2, 1, 400), rho, 60, 3), 60) for _ in range(30)]
        assert abs(np.mean(estimates) - rho) < 0.02, (rho, np.mean(estimates))


@pytest.mark.parametrize("rho", [0.3, 0.8])
def test_calibrated_test_false_flags_and_power(rho):
    """An honest retrain (one more draw of the same process) gets ~no calibrated flags, whatever ρ; the exact
    test flags many more. With stable per-sample behaviour (low ρ) a model that recognises samples every
    reference fails on is flagged; with high ρ and three references the test cannot be sure (by design)."""
    rng = np.random.default_rng(5)
    n, trials, k = 400, 60, 3
    mu = rng.beta(2, 1, n)
    refs = _retrains(rng, mu, rho, trials, k)
    honest = _retrains(rng, mu, rho, trials, 1)[0]
    p_cal, _ = calibrated_test(honest, refs, trials)
    p_exact = one_sided_exact(honest, refs.sum(0), trials, k * trials)
    assert (sps.false_discovery_control(p_cal) <= 0.05).sum() <= 0.02 * n
    assert (sps.false_discovery_control(p_exact) <= 0.05).sum() > (sps.false_discovery_control(p_cal) <= 0.05).sum()
    weak = np.flatnonzero(refs.sum(0) <= 0.1 * k * trials)
    leaky = honest.copy()
    leaky[weak] = trials
    flagged = sps.false_discovery_control(calibrated_test(leaky, refs, trials)[0]) <= 0.05
    if rho < 0.5:
        assert flagged[weak].mean() > 0.5
    else:
        assert calibrated_test(np.array([trials]), np.zeros((k, 1), int), trials, rho=rho)[0][0] > 0.01


def test_chunked_bootstrap_weights_match_their_dense_form(monkeypatch):
    from unlearn_audit.stats import bootstrap as boot

    monkeypatch.setattr(boot, "MAX_DENSE_WEIGHTS", 100)
    w = boot.bootstrap_weights(np.random.default_rng(0), 50, 30)
    assert isinstance(w, boot.ChunkedWeights) and w.chunk < 30
    dense = np.vstack([block for _, block in w._blocks()])
    assert dense.shape == (30, 50) and np.all(dense.sum(axis=1) == 50)
    x = np.random.default_rng(1).random((50, 3))
    row = np.random.default_rng(2).random(50)
    assert np.allclose(w @ x, dense @ x) and np.allclose(w @ x, w @ x)  # deterministic regeneration
    assert np.allclose(w.sum(axis=1), 50) and np.allclose((w * row) @ x, (dense * row) @ x)
    assert np.allclose((w * row).sum(axis=1), dense @ row)
    est = ratio_of_means(x[:, 0], x[:, 1], w, 0.95, "bca")
    assert est.lo <= est.value <= est.hi


def test_bca_at_a_sequential_looks_level_stays_inside_the_replicates():
    """An early look asks for a 99.99999 % interval; with skewed data the BCa map leaves its domain (its
    denominator turns negative). The end is then the extreme replicate, never a crash or NaN."""
    from unlearn_audit.stats.bootstrap import bca_interval

    rng = np.random.default_rng(0)
    x = rng.exponential(size=30) ** 3
    replicates = np.array([rng.choice(x, 30).mean() for _ in range(2000)])
    jack = np.array([np.delete(x, i).mean() for i in range(30)])
    for level in (0.95, 0.9999, 1 - 1e-10):
        lo, hi = bca_interval(float(x.mean()), replicates, jack, level)
        assert replicates.min() <= lo < hi <= replicates.max()


def test_levels_beyond_the_replicates_use_the_normal_interval():
    from unlearn_audit.stats.bootstrap import interval

    rng = np.random.default_rng(1)
    replicates = rng.normal(1.0, 0.1, size=2000)
    usual = interval(1.0, replicates, 0.983, "percentile")
    assert usual.method == "bootstrap-percentile"  # the full audit's levels are untouched
    extreme = interval(1.0, replicates, 1 - 1e-10, "bca", lambda: replicates[:50])
    assert extreme.method == "bootstrap-normal"
    assert extreme.lo < replicates.min() and extreme.hi > replicates.max()  # wider than the replicates reach
    assert extreme.hi - 1.0 == pytest.approx(6.47 * 0.1, rel=0.05)  # z(1e-10 / 2) ≈ 6.47


def test_calibrated_tails_equal_scipys_betabinomial_survival():
    """The calibrated test sums the beta-binomial pmf from the top; scipy's sf gives the same p-values."""
    rng = np.random.default_rng(5)
    trials = 60
    v_refs = rng.integers(0, trials + 1, size=(3, 40))
    u = rng.integers(0, trials + 1, size=40)
    p, rho = calibrated_test(u, v_refs, trials)
    phi = 1.0 / rho - 1.0
    mus = (np.arange(200) + 0.5) / 200
    a, b = mus * phi, (1 - mus) * phi
    tail = sps.betabinom.sf(np.arange(trials + 1)[:, None] - 1, trials, a[None, :], b[None, :])
    loglik = sps.betabinom.logpmf(v_refs[:, :, None], trials, a[None, None, :], b[None, None, :]).sum(axis=0)
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    expected = np.clip(np.einsum("ng,ng->n", post, tail[u]), 0.0, 1.0)
    np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-15)
