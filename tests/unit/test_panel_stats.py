"""Pure statistics behind the standard unlearning panel: Wilson coverage, AUC/DeLong, TPR at fixed FPR, the
reference-calibrated membership test, Avg Gap and the flag agreement table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from unlearn_audit.metrics.avg_gap import avg_gap
from unlearn_audit.metrics.mia import agreement, make_split
from unlearn_audit.stats import Estimate, wilson
from unlearn_audit.stats.membership import (
    logit_confidence,
    moderated_variance_prior,
    reference_calibrated_test,
    true_class_probability,
)
from unlearn_audit.stats.roc import auc, mann_whitney_check, threshold_at_fpr, tpr_at_fpr, tpr_at_fpr_point


@pytest.mark.parametrize(("n", "p"), [(40, 0.5), (200, 0.1), (500, 0.03), (2000, 0.9)])
def test_wilson_coverage_is_close_to_95_percent(n, p):
    rng = np.random.default_rng(n)
    draws = rng.binomial(n, p, size=4000)
    covered = np.mean([wilson(int(k), n).contains(p) for k in draws])
    # Wilson is known to be near-nominal (slightly liberal or conservative by ~1-2 points at the edges)
    assert 0.925 <= covered <= 0.975, covered


@given(st.integers(1, 3000), st.data())
@settings(max_examples=60, deadline=None)
def test_wilson_matches_scipy(n, data):
    k = data.draw(st.integers(0, n))
    ours = wilson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert ours.lo == pytest.approx(ci.low, abs=1e-9)
    assert ours.hi == pytest.approx(ci.high, abs=1e-9)


finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=60), st.lists(finite, min_size=1, max_size=60))
@settings(max_examples=80, deadline=None)
def test_auc_equals_mann_whitney(pos, neg):
    ours = auc(np.array(pos), np.array(neg))
    assert ours.value == pytest.approx(mann_whitney_check(np.array(pos), np.array(neg)), abs=1e-12)
    assert 0.0 <= ours.lo <= ours.value <= ours.hi <= 1.0


def test_auc_interval_coverage_by_simulation():
    rng = np.random.default_rng(7)
    shift = 0.5
    truth = stats.norm.cdf(shift / math.sqrt(2))  # P(X > Y) for X ~ N(shift, 1), Y ~ N(0, 1)
    hits = [auc(rng.normal(shift, 1, 150), rng.normal(0, 1, 120)).contains(truth) for _ in range(600)]
    assert 0.92 <= np.mean(hits) <= 0.98, np.mean(hits)


def test_auc_of_perfect_separation_has_a_nondegenerate_interval():
    e = auc(np.arange(10, 20.0), np.arange(10.0))
    assert e.value == 1.0 and 0.5 < e.lo < 1.0 and e.hi == 1.0


@given(st.lists(finite, min_size=1, max_size=300), st.sampled_from([0.01, 0.05, 0.1]))
@settings(max_examples=80, deadline=None)
def test_threshold_respects_the_fpr(neg, fpr):
    neg = np.array(neg)
    t = threshold_at_fpr(neg, fpr)
    assert np.mean(neg > t) <= fpr + 1e-12


def test_tpr_at_fpr_separates_and_has_an_interval():
    rng = np.random.default_rng(0)
    neg = rng.normal(0, 1, 1000)
    assert tpr_at_fpr_point(neg + 10, neg) == 1.0
    e = tpr_at_fpr(rng.normal(1, 1, 500), neg, 0.01, rng=np.random.default_rng(1), resamples=300)
    # TPR at 1 % FPR of a unit shift: 1 - Φ(z_0.99 - 1) ≈ 0.092
    assert e.lo <= 0.092 + 0.03 and e.hi >= 0.092 - 0.03 and e.lo <= e.value <= e.hi


def test_logit_confidence_is_the_logit_of_the_true_class_probability():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (200, 10))
    y = rng.integers(0, 10, 200)
    p = true_class_probability(logits, y)
    assert np.allclose(logit_confidence(logits, y), np.log(p / (1 - p)), atol=1e-8)
    saturated = np.array([[1000.0, 0.0, 0.0]])
    assert logit_confidence(saturated, np.array([0]))[0] == 30.0


def test_moderated_prior_recovers_simulated_parameters():
    rng = np.random.default_rng(5)
    d0, s0, df = 8.0, 2.0, 3
    sigma2 = d0 * s0 / rng.chisquare(d0, 20000)
    s2 = sigma2 * rng.chisquare(df, 20000) / df
    est_s0, est_d0 = moderated_variance_prior(s2, df)
    assert est_s0 == pytest.approx(s0, rel=0.1)
    assert est_d0 == pytest.approx(d0, rel=0.35)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_reference_calibrated_test_is_calibrated_under_the_null(k):
    """Heteroscedastic per-sample φ: the subject is one more draw from the references' distribution."""
    rng = np.random.default_rng(k)
    n = 4000
    mu = rng.normal(3, 3, n)
    sigma = np.sqrt(6 * 1.5 / rng.chisquare(6, n))
    refs = mu + sigma * rng.normal(size=(k, n))
    subject = mu + sigma * rng.normal(size=n)
    test = reference_calibrated_test(subject, refs)
    for alpha in (0.01, 0.05, 0.2):
        assert np.mean(test.p_value < alpha) <= alpha * 1.25 + 0.003, (alpha, np.mean(test.p_value < alpha))
    assert test.flagged(0.05).sum() <= 2


def test_reference_calibrated_test_finds_members():
    rng = np.random.default_rng(11)
    n = 500
    mu = rng.normal(3, 3, n)
    refs = mu + rng.normal(size=(3, n))
    subject = mu + rng.normal(size=n)
    subject[:50] += 8  # fifty samples the subject is far more confident on
    test = reference_calibrated_test(subject, refs)
    flagged = test.flagged(0.05)
    assert flagged[:50].mean() > 0.8 and flagged[50:].mean() < 0.02


def test_reference_calibrated_test_needs_two_references():
    with pytest.raises(ValueError, match="two references"):
        reference_calibrated_test(np.zeros(5), np.zeros((1, 5)))


def _e(v: float, half: float = 0.01) -> Estimate:
    return Estimate(v, v - half, v + half, "wilson")


def test_avg_gap_is_the_mean_absolute_difference_of_four_components():
    keys = ("retain_acc", "unlearn_acc", "test_acc", "mia_svc_unseen")
    subject = {k: _e(v) for k, v in zip(keys, (0.99, 0.05, 0.88, 0.08), strict=True)}
    refs = [
        {k: _e(v) for k, v in zip(keys, vals, strict=True)}
        for vals in ((0.98, 0.2, 0.88, 0.22), (0.98, 0.22, 0.89, 0.22))
    ]
    gap, reason = avg_gap(subject, refs, seed=0)
    assert reason is None and gap is not None
    expected = np.mean([abs(0.99 - 0.98), abs(0.05 - 0.21), abs(0.88 - 0.885), abs(0.08 - 0.22)])
    assert gap.value == pytest.approx(expected)
    assert gap.lo <= gap.value <= gap.hi
    assert avg_gap(subject, refs, seed=0)[0] == gap  # deterministic with the seed
    missing, why = avg_gap({**subject, "test_acc": None}, refs, seed=0)
    assert missing is None and "test_acc" in (why or "")


def test_agreement_table():
    ids = ("a", "b", "c", "d")
    out = agreement(ids, np.array([True, True, False, False]), {"a", "c"})
    assert (out["both"], out["only_reference_mia"], out["only_r_tau"], out["neither"]) == (1, 1, 1, 1)
    assert out["ids_only_r_tau"] == ["c"] and out["ids_only_reference_mia"] == ["b"]
    assert out["cohen_kappa"] == pytest.approx(0.0)


def test_mia_split_is_balanced_disjoint_and_seeded():
    retain_y = np.repeat(np.arange(10), 200)
    test_y = np.repeat(np.arange(10), 200)
    forget_y = np.zeros(500, dtype=int)
    split = make_split(retain_y, test_y, forget_y, 0)
    assert split.seen.size == split.unseen.size == 1000
    assert not set(split.unseen) & set(split.negatives)
    assert set(test_y[split.negatives]) == {0} and split.negatives.size == 100
    again = make_split(retain_y, test_y, forget_y, 0)
    assert np.array_equal(split.seen, again.seen) and np.array_equal(split.negatives, again.negatives)
