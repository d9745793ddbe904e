"""A margin can back a finding, never a pass: wherever the retraining spread is unmeasured (one reference, or
adversarial inputs not crafted on the references), a model inside the band reads ``inconclusive`` (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn_audit.analysis import StatsSettings, analyse_probe
from unlearn_audit.policy import Band, Policy, withhold_pass
from unlearn_audit.probes.counts import ProbeCounts

TAUS = np.array([0.0, 0.01, 0.02])
DRAWS = 20
SETTINGS = StatsSettings(bootstrap=300, method="percentile", level=0.95, seed=0)


def _counts(rates: list[float], n: int, seed: int, adversarial: bool = False, crafted_on_refs: bool = True):
    """Counts of one subject (model 0) and len(rates) - 1 references, each model recognising ``rate`` of the draws
    (binomial per sample), so R ≈ rates[0] / mean(rates[1:])."""
    rng = np.random.default_rng(seed)
    m = len(rates)
    anchors = list(range(m)) if adversarial and crafted_on_refs else [0]
    correct = np.stack(
        [np.stack([rng.binomial(DRAWS, r, size=(n, len(TAUS))) for r in rates]) for _ in anchors]
    ).astype(np.int64)
    disagree = np.abs(correct - correct[:, :1]).astype(np.int64)
    return ProbeCounts(
        probe="fgsm" if adversarial else "gaussian",
        probe_config={"adversarial": adversarial},
        taus=TAUS,
        draws=DRAWS,
        sample_ids=tuple(f"s{i}" for i in range(n)),
        labels=np.zeros(n, dtype=np.int64),
        models=("model", *(f"ref{k}" for k in range(m - 1))),
        crafted_on=tuple(anchors),
        correct=correct,
        disagree=disagree,
    )


def _verdict(counts: ProbeCounts):
    analysis, _, _ = analyse_probe(counts, 0, Policy(), SETTINGS, 0.95, "test probe")
    return analysis


@settings(max_examples=25, deadline=None)
@given(
    residual=st.floats(0.0, 0.14),
    rate=st.floats(0.3, 0.8),
    n=st.integers(100, 400),
    seed=st.integers(0, 2**16),
    adversarial=st.booleans(),
)
def test_one_reference_never_passes(residual, rate, n, seed, adversarial):
    """Any residual under the 15 % margin, any recognition rate, random or adversarial (swap) probe: not pass."""
    counts = _counts([min(1.0, rate * (1 + residual)), rate], n, seed, adversarial)
    analysis = _verdict(counts)
    assert analysis.verdict.kind != "pass", analysis.verdict.reason
    assert analysis.band.spread_measured is False


def test_a_small_residual_inside_the_margin_reads_inconclusive_with_what_was_ruled_out():
    """R ≈ 1.05 with a tight interval: the old rule passed it (the interval lies inside [1/1.15, 1.15])."""
    analysis = _verdict(_counts([0.63, 0.60], 2000, 1))
    est, band = analysis.pooled, analysis.band
    assert band.lo <= est.lo and est.hi <= band.hi and est.lo > 1.0  # inside the margin, a real residual
    assert analysis.verdict.kind == "inconclusive"
    reason = analysis.verdict.reason
    assert f"Ruled out: R above {est.hi:.3f} or below {est.lo:.3f}" in reason
    assert "seed-to-seed spread of retraining is unmeasured" in reason and "add a second retrained reference" in reason
    assert analysis.verdict.evidence["band"]["spread_measured"] is False


def test_a_residual_beyond_the_margin_is_still_a_finding_with_one_reference():
    analysis = _verdict(_counts([0.75, 0.50], 500, 2))
    assert analysis.verdict.kind == "residual_knowledge"


def test_measured_spread_can_pass():
    """The rule withholds only unmeasured passes: three references that agree, and a model like them, pass."""
    analysis = _verdict(_counts([0.6, 0.6, 0.6, 0.6], 2000, 3))
    assert analysis.band.spread_measured is True and analysis.band.method.startswith("leave-one-out")
    assert analysis.verdict.kind == "pass", analysis.verdict.reason


def test_adversarial_probes_not_crafted_on_the_references_never_pass():
    counts = _counts([0.6, 0.6, 0.6, 0.6], 2000, 4, adversarial=True, crafted_on_refs=False)
    analysis = _verdict(counts)
    assert analysis.band.spread_measured is False and "not crafted" in analysis.band.method
    assert analysis.verdict.kind == "inconclusive"
    assert "craft the adversarial inputs on the references too" in analysis.verdict.reason


def test_whole_class_excess_rate_with_one_reference_never_passes():
    """The references never recognise the class (D replaces R); one reference: the D band is a margin too."""
    analysis = _verdict(_counts([0.002, 0.001], 500, 5))
    assert analysis.statistic == "excess"
    assert analysis.verdict.kind == "inconclusive" and "D = " in analysis.verdict.reason


@pytest.mark.parametrize("kind", ["residual_knowledge", "over_unlearning", "inconclusive"])
def test_withhold_pass_keeps_every_other_verdict(kind):
    band = Band(0.87, 1.15, "fixed margin", spread_measured=False)
    assert withhold_pass(kind, band, "p", "R", 1.0, 0.9, 1.1, "add one") == (kind, None)
    measured = Band(0.97, 1.03, "leave-one-out over 3 references")
    assert withhold_pass("pass", measured, "p", "R", 1.0, 0.99, 1.01, "x") == ("pass", None)
