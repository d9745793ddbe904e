"""Proof by simulation for sequential audits (issue 16, item 4), and unit tests of ``stats/sequential.py``.

The simulated audits (``sequential_sim.py``: random-effects counts, the real :func:`analyse_probe` at each look)
measure, for one counted probe with error budget ``α/P = 0.05`` (P = 1; Bonferroni over more probes splits α
further and changes nothing else):

* the false-finding rate of honest retrains under the sequential design, against α;
* the coverage of the interval reported at the look the audit stopped at, against the nominal level;
* the power to find a real residual, against the full (single-look) audit's, and the share of samples used.

The numbers are printed in the terminal summary (``tests/unit/conftest.py``).

**Stopping rule simulated.** An audit stops early only on a *finding* (interval wholly above or below the band);
a ``pass`` is only given at the last look. ``test_an_early_pass_is_not_protected_by_alpha_spending`` shows why:
the null band is the union of the references' own intervals at the same look and level, so at an early look
(few samples, a very high repeated-CI level) the band is as wide as the interval, and a model with a real
residual "passes" at the first look in a large share of audits that the full audit flags. Alpha spending
controls intervals that miss the truth (false findings); it says nothing about the chance of an early pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from tests.unit.sequential_sim import (
    DECIDED,
    FINDINGS,
    Outcome,
    World,
    look_levels,
    sequential_audit,
    simulate_counts,
    true_ratio,
    verdicts_only,
)
from unlearn_audit.analysis import StatsSettings, analyse_probe
from unlearn_audit.policy import Policy
from unlearn_audit.stats import clopper_pearson
from unlearn_audit.stats.sequential import DEFAULT_LOOKS, DEFAULT_SPENDING, design, look_sizes, spent

ALPHA = 0.05
POLICY = Policy(alpha=ALPHA)
BOOTSTRAP = 1000
"""Replicates per interval: the audit's method (BCa), half its default replicates, for time."""

HONEST = World(model_sd=0.08)
"""Honest retrains: the subject drawn like the references. Model-level spread 0.08 on the logit (R of one retrain
against the others: sd ≈ 3 %), where the full audit itself holds α (see the report of issue 16 for larger
spreads, where the three-reference band does not)."""
RESIDUAL = World(model_sd=0.08, residual=0.45)
"""A residual the full audit finds most of the time (R ≈ 1.13; the band's floor is 1.02)."""
CLEAR = World(model_sd=0.08, residual=0.7)
"""A clear residual (R ≈ 1.21): the full audit always finds it."""
AUDITS = {"honest": 240, "residual": 160, "clear": 40}

Designs = dict[str, tuple[list[tuple[int, float]], frozenset[str]]]


OBF_LOOKS = (0.125, 0.25, 0.5, 1.0)
"""``--spending obrien-fleming --looks 1/8,1/4,1/2,1``: the first shipped default, reported beside the default."""


def designs(n: int) -> Designs:
    full = look_levels(n, (1.0,), ALPHA, DEFAULT_SPENDING, POLICY)
    default = look_levels(n, DEFAULT_LOOKS, ALPHA, DEFAULT_SPENDING, POLICY)
    obf = look_levels(n, OBF_LOOKS, ALPHA, "obrien-fleming", POLICY)  # reported, not the default
    return {
        "full": (full, DECIDED),
        "sequential": (default, FINDINGS),  # the shipped default (AuditConfig.spending, AuditConfig.looks)
        "sequential-obf": (obf, FINDINGS),
        "early-pass": (default, DECIDED),
    }


@dataclass
class Runs:
    world: World
    outcomes: dict[str, list[Outcome]]
    truth: list[float]
    seconds: float

    def rate(self, design_name: str, kinds: frozenset[str]) -> tuple[int, int]:
        outcomes = self.outcomes[design_name]
        return sum(o.kind in kinds for o in outcomes), len(outcomes)

    def covered(self, design_name: str) -> tuple[int, int]:
        pairs = zip(self.outcomes[design_name], self.truth, strict=True)
        return sum(o.stopped.lo <= r <= o.stopped.hi for o, r in pairs), len(self.truth)

    def share_used(self, design_name: str) -> float:
        return float(np.mean([o.share_used for o in self.outcomes[design_name]]))


_RUNS: dict[str, Runs] = {}


def simulated(name: str) -> Runs:
    """Every design on the same simulated audits of one world (computed once per session)."""
    if name not in _RUNS:
        world = {"honest": HONEST, "residual": RESIDUAL, "clear": CLEAR}[name]
        plans = designs(world.n)
        outcomes: dict[str, list[Outcome]] = {key: [] for key in plans}
        truth = []
        start = time.perf_counter()
        with verdicts_only():
            for audit in range(AUDITS[name]):
                rng = np.random.default_rng([16, len(name), audit])
                sim = simulate_counts(world, rng)
                truth.append(true_ratio(world, sim.model_effects))
                order = rng.permutation(world.n)  # the audit's seeded sample order
                settings_ = StatsSettings(bootstrap=BOOTSTRAP, method="bca", seed=audit)
                for key, (levels, stop_on) in plans.items():
                    outcomes[key].append(sequential_audit(sim.counts, levels, POLICY, settings_, order, stop_on))
        _RUNS[name] = Runs(world, outcomes, truth, time.perf_counter() - start)
    return _RUNS[name]


def upper(k: int, n: int) -> float:
    """One-sided 99 % Clopper–Pearson upper bound of a rate."""
    return clopper_pearson(k, n, 0.98).hi


def lower(k: int, n: int) -> float:
    """One-sided 99 % Clopper–Pearson lower bound of a rate."""
    return clopper_pearson(k, n, 0.98).lo


def describe(label: str, k: int, n: int) -> str:
    return f"{label} {k}/{n} = {k / n:.3f} [99% one-sided CP {lower(k, n):.3f} to {upper(k, n):.3f}]"


# --------------------------------------------------------------------------- the simulator itself


def test_skipping_the_per_sample_test_leaves_the_verdict_alone():
    """``verdicts_only`` drops a cost, not a number the verdict uses: interval, band and verdict are identical."""
    sim = simulate_counts(RESIDUAL, np.random.default_rng(3))
    settings_ = StatsSettings(bootstrap=300, method="bca", seed=1)
    full, _, _ = analyse_probe(sim.counts, 0, POLICY, settings_, 0.99, "probe")
    with verdicts_only():
        fast, _, _ = analyse_probe(sim.counts, 0, POLICY, settings_, 0.99, "probe")
    assert (fast.pooled, fast.band, fast.verdict.kind, fast.verdict.reason) == (
        full.pooled,
        full.band,
        full.verdict.kind,
        full.verdict.reason,
    )


def test_true_ratio_matches_a_monte_carlo_population():
    """The quadrature target equals the ratio of means over a large simulated population, the models fixed."""
    from scipy import special

    rng = np.random.default_rng(5)
    g = np.array([0.1, -0.05, 0.02, 0.0])
    world = RESIDUAL
    population = 400_000
    mu = rng.normal(world.base_mean, world.base_sd, population)
    e = rng.normal(0.0, world.retrain_sd, (4, population))
    shift = g + np.array([world.residual, 0.0, 0.0, 0.0])
    logit = mu[None, :, None] + shift[:, None, None] + e[:, :, None] - world.slope * np.asarray(world.taus)
    rates = special.expit(logit).mean(axis=1).sum(axis=1)
    assert true_ratio(world, g) == pytest.approx(rates[0] / rates[1:].mean(), rel=2e-3)
    assert true_ratio(HONEST, np.zeros(4)) == pytest.approx(1.0, abs=1e-12)


def test_simulated_counts_are_laid_out_as_the_engine_does():
    sim = simulate_counts(HONEST, np.random.default_rng(0))
    c = sim.counts
    assert c.correct.shape == (1, 4, HONEST.n, 3) and c.crafted_on == (0,) and c.references == (1, 2, 3)
    assert c.correct.max() <= c.draws and c.disagree[0, 0].sum() == 0
    # disagreement is consistent with the counts: |u − v| ≤ d ≤ min(c, u + v, 2c − u − v)
    u, v, d = c.correct[0, 0], c.correct[0, 1:], c.disagree[0, 1:]
    assert np.all(np.abs(u - v) <= d) and np.all(d <= np.minimum(u + v, 2 * c.draws - u - v))
    head = c.take(np.arange(10))
    assert head.correct.shape[2] == 10 and head.sample_ids == c.sample_ids[:10]


# --------------------------------------------------------------------------- 1. false findings of honest retrains


@pytest.mark.slow
def test_honest_retrains_false_finding_rate_is_at_most_alpha(simulation_report: Callable[[str], None]):
    runs = simulated("honest")
    k, n = runs.rate("sequential", FINDINGS)
    k_full, _ = runs.rate("full", FINDINGS)
    k_early, _ = runs.rate("early-pass", FINDINGS)
    simulation_report(
        f"honest retrains ({n} audits, N = {HONEST.n}, K = {HONEST.references}, alpha/P = {ALPHA}, looks "
        f"{list(DEFAULT_LOOKS)}, {DEFAULT_SPENDING}, {BOOTSTRAP} BCa replicates, {runs.seconds:.1f} s):"
    )
    simulation_report("  false findings, sequential: " + describe("", k, n).strip())
    simulation_report("  false findings, full audit: " + describe("", k_full, n).strip())
    simulation_report("  false findings, sequential allowing early pass: " + describe("", k_early, n).strip())
    simulation_report(f"  mean share of samples used, sequential: {runs.share_used('sequential'):.3f}")
    k_obf, _ = runs.rate("sequential-obf", FINDINGS)
    simulation_report("  false findings, --spending obrien-fleming, looks ⅛…1: " + describe("", k_obf, n).strip())
    # a real test: the rate is significantly above α only if its 99 % lower bound is
    assert lower(k, n) <= ALPHA, describe("false findings", k, n)
    # stopping early on findings adds (almost) nothing to what the full audit finds on honest retrains
    assert k <= k_full + max(2, 0.01 * n), (k, k_full)


def crossing_rates(critical: tuple[float, ...], fractions: tuple[float, ...], paths: int, seed: int) -> np.ndarray:
    """Share of Brownian paths whose standardised statistic has crossed ``±c_k`` by each look (the repeated
    intervals ``estimate ± c_k·se_k`` of a normal mean have missed the truth by then)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(fractions)
    steps = rng.standard_normal((paths, t.size)) * np.sqrt(np.diff(t, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(t)
    missed = np.abs(z) >= np.asarray(critical)
    return np.logical_or.accumulate(missed, axis=1).mean(axis=0)


@pytest.mark.parametrize("alpha", [0.05, 0.0125])
def test_repeated_intervals_cover_simultaneously_and_naive_looks_do_not(
    alpha: float, simulation_report: Callable[[str], None]
):
    """The core of the design, on a normal mean: with the design's levels the intervals cover the truth at every
    look at once with probability ≥ 1 − α; the full audit's fixed level at every look (naive repeated testing)
    does not. This is the test a broken design fails (the full simulated audits cannot show it: the
    leave-one-out band is so conservative that even naive repeated looks add no measurable false findings)."""
    n, paths = 320, 200_000
    sizes = look_sizes(n, DEFAULT_LOOKS, POLICY.min_samples)
    fractions = tuple(s / n for s in sizes)
    plan = design(fractions, alpha)
    naive = (float(sps.norm.isf(alpha / 2)),) * len(fractions)
    missed = crossing_rates(plan.critical, fractions, paths, seed=1)[-1]
    missed_naive = crossing_rates(naive, fractions, paths, seed=1)[-1]
    se = math.sqrt(alpha * (1 - alpha) / paths)
    simulation_report(
        f"repeated intervals, normal mean, looks {list(sizes)} of {n}, alpha/P = {alpha}, {paths} paths: "
        f"simultaneous non-coverage {missed:.4f} with the design (± {se:.4f}), {missed_naive:.4f} naive"
    )
    assert missed <= alpha + 4 * se
    assert missed_naive >= 1.5 * alpha


# --------------------------------------------------------------------------- 2. coverage at the stopping look


@pytest.mark.slow
def test_interval_at_the_stopping_look_covers_the_population_ratio(simulation_report: Callable[[str], None]):
    """The interval reported where the audit stopped covers R(g), the population ratio for the simulated models
    (``sequential_sim`` module docstring), at ≥ the nominal 1 − α/P: the repeated intervals cover at every look
    at once, so whichever look the audit stops at."""
    nominal = 1.0 - ALPHA
    for name in ("honest", "residual", "clear"):
        runs = simulated(name)
        k, n = runs.covered("sequential")
        k_full, _ = runs.covered("full")
        simulation_report(
            f"coverage of the population R at the stopping look, {name} (R ≈ {np.mean(runs.truth):.3f}): "
            + describe("sequential", k, n)
            + "; "
            + describe("full audit", k_full, n)
        )
        assert upper(k, n) >= nominal, describe(f"{name} coverage", k, n)
    # honest retrains take every look (they stop only on a false finding): the repeated intervals should cover
    # the truth at all looks at once. Measured: 223/240 with the default design, 228/240 with O'Brien–Fleming,
    # whose early intervals are so wide (levels 1 − 3e-8 at ⅛) that they cannot miss. The default's misses sit at
    # its first look (80 samples here, 6 misses where 1.5 are nominal): the BCa interval of a ratio on 80
    # samples under-covers at any level (18/240 misses at a single 95 % look, measured), which a design that
    # spends α there inherits (docs/methodology.md, "Sequential audits")
    runs = simulated("honest")
    pairs = zip(runs.outcomes["sequential"], runs.truth, strict=True)
    every = sum(all(look.lo <= r <= look.hi for look in o.looks) for o, r in pairs)
    simulation_report("coverage at every look at once, honest: " + describe("sequential", every, len(runs.truth)))
    pairs = zip(runs.outcomes["sequential-obf"], runs.truth, strict=True)
    obf = sum(all(look.lo <= r <= look.hi for look in o.looks) for o, r in pairs)
    simulation_report(
        "  --spending obrien-fleming: " + describe("coverage at every look at once, honest", obf, len(runs.truth))
    )
    assert upper(every, len(runs.truth)) >= nominal


# --------------------------------------------------------------------------- 3. power against the full audit


@pytest.mark.slow
def test_power_against_the_full_audit(simulation_report: Callable[[str], None]):
    """A residual the full audit finds most of the time: the sequential design finds it as often (same audits,
    paired), and a clear residual is found with about half the samples."""
    tolerance = 0.05
    found = frozenset({"residual_knowledge"})
    for name in ("residual", "clear"):
        runs = simulated(name)
        k, n = runs.rate("sequential", found)
        k_full, _ = runs.rate("full", found)
        used = runs.share_used("sequential")
        simulation_report(
            f"power, {name} (delta = {runs.world.residual} on the logit, R ≈ {np.mean(runs.truth):.3f}, "
            f"{n} audits, {runs.seconds:.1f} s): sequential {k / n:.3f}, full audit {k_full / n:.3f}, "
            f"mean share of samples used {used:.3f}"
        )
        k_obf, _ = runs.rate("sequential-obf", found)
        simulation_report(
            f"  --spending obrien-fleming (looks ⅛…1), {name}: power {k_obf / n:.3f}, mean share of samples used "
            f"{runs.share_used('sequential-obf'):.3f}"
        )
        assert k / n >= k_full / n - tolerance, (k, k_full, n)
    assert simulated("clear").share_used("sequential") <= 0.6


@pytest.mark.slow
def test_an_early_pass_is_not_protected_by_alpha_spending(simulation_report: Callable[[str], None]):
    """Allowing a ``pass`` to stop the audit early (the interval inside the band at an early look) loses power:
    the band is built from the references' intervals at the same look and level, so it widens with them, and a
    real residual passes at the first look. This is why the simulated design stops early only on findings."""
    runs = simulated("residual")
    found = frozenset({"residual_knowledge"})
    k_early, n = runs.rate("early-pass", found)
    k_full, _ = runs.rate("full", found)
    passed_early, _ = runs.rate("early-pass", frozenset({"pass"}))
    passed_full, _ = runs.rate("full", frozenset({"pass"}))
    pairs = zip(runs.outcomes["early-pass"], runs.outcomes["full"], strict=True)
    missed = [e.stopped.samples for e, f in pairs if e.kind == "pass" and f.kind == "residual_knowledge"]
    simulation_report(
        f"early pass allowed, residual (R ≈ {np.mean(runs.truth):.3f}): power {k_early / n:.3f} against the full "
        f"audit's {k_full / n:.3f}; passed {passed_early}/{n} (full audit {passed_full}/{n}); {len(missed)} audits "
        f"the full audit flags pass early, at {sorted(set(missed))} samples"
    )
    assert k_early < k_full
    assert len(missed) >= 0.02 * n  # measured: 4 of 160 at the default design's first look (15 with O'Brien–Fleming at ⅛)


# --------------------------------------------------------------------------- 4. stats/sequential.py


@pytest.mark.parametrize("function", ["kim-demets", "obrien-fleming", "pocock"])
@pytest.mark.parametrize("fractions", [DEFAULT_LOOKS, OBF_LOOKS, (0.3, 0.6, 1.0), (0.1, 0.2, 0.35, 0.5, 0.75, 1.0)])
def test_boundaries_spend_what_the_spending_function_allows(function: str, fractions: tuple[float, ...]):
    """Monte Carlo on Brownian paths: the chance of crossing by each look equals α(t_k) (the coordinator measured
    ±0.0003 at 2e6 paths; here 2e5 paths, tolerance 4 standard errors)."""
    alpha, paths = 0.05, 200_000
    plan = design(fractions, alpha, function)
    crossed = crossing_rates(plan.critical, plan.fractions, paths, seed=7)
    for rate, target in zip(crossed, plan.spent, strict=True):
        assert rate == pytest.approx(target, abs=4 * math.sqrt(target * (1 - target) / paths) + 1e-5)
    assert plan.spent[-1] == pytest.approx(alpha)


def test_a_single_look_is_the_fixed_sample_test():
    for alpha in (0.05, 0.01, 0.0125):
        plan = design((1.0,), alpha)
        assert plan.critical[0] == pytest.approx(sps.norm.isf(alpha / 2), rel=1e-12)
        assert plan.levels[0] == pytest.approx(1 - alpha, abs=1e-12)


def test_kim_demets_sits_between_obrien_fleming_and_pocock():
    """The default (α·t^1.5) spends more than O'Brien–Fleming early and less than Pocock; its last look is within
    5 % of the fixed-sample critical value (2.499 against 2.394 for three probes at α = 0.05)."""
    obf, kd, pocock = (design(DEFAULT_LOOKS, 0.05 / 3, f) for f in ("obrien-fleming", "kim-demets", "pocock"))
    assert obf.critical[0] > kd.critical[0] > pocock.critical[0]
    assert obf.critical[-1] < kd.critical[-1] < pocock.critical[-1]
    assert kd.critical[-1] < 1.05 * sps.norm.isf(0.05 / 6)
    assert all(b < a for a, b in zip(kd.critical, kd.critical[1:], strict=False))


def test_obrien_fleming_spends_less_early_than_pocock():
    obf, pocock = design(OBF_LOOKS, 0.05, "obrien-fleming"), design(OBF_LOOKS, 0.05, "pocock")
    assert obf.spent[0] < pocock.spent[0] / 100
    assert all(b < a for a, b in zip(obf.critical, obf.critical[1:], strict=False))  # levels fall toward 1 − α
    assert obf.critical[0] > pocock.critical[0] and obf.critical[-1] < pocock.critical[-1]
    # the last O'Brien–Fleming look is close to the fixed-sample test; Pocock pays more at the end
    fixed = sps.norm.isf(0.025)
    assert obf.critical[-1] - fixed < 0.02 < pocock.critical[-1] - fixed


def test_design_rejects_bad_looks():
    for bad in ((), (0.5,), (0.5, 0.25, 1.0), (0.0, 1.0), (0.5, 0.5, 1.0), (0.5, 1.5)):
        with pytest.raises(ValueError, match="look"):
            design(bad, 0.05)
    with pytest.raises(ValueError, match="spending"):
        spent(0.05, 0.5, "haybittle")


def test_look_sizes_edge_cases():
    assert look_sizes(320, DEFAULT_LOOKS, 20) == [80, 160, 320]
    assert look_sizes(320, OBF_LOOKS, 20) == [40, 80, 160, 320]
    assert look_sizes(100, OBF_LOOKS, 20) == [25, 50, 100]  # ⅛ of 100 is 13 < 20: dropped
    assert look_sizes(15, DEFAULT_LOOKS, 20) == [15]  # below the minimum: one look at everything
    assert look_sizes(4, OBF_LOOKS, 1) == [1, 2, 4]  # ⅛ and ¼ of 4 are both one sample: one look
    assert look_sizes(10, (0.1, 0.15, 1.0), 1) == [1, 2, 10]
    assert look_sizes(50, (0.5,), 1) == [25, 50]  # the last look always sees every sample
    assert look_sizes(1, DEFAULT_LOOKS, 20) == [1]


fraction_lists = (
    st.lists(st.floats(0.02, 0.98), min_size=0, max_size=5, unique=True)
    .map(lambda xs: (*sorted(round(x, 3) for x in set(xs)), 1.0))
    .filter(lambda xs: all(b - a > 0.005 for a, b in zip(xs, xs[1:], strict=False)))
)


@settings(max_examples=40, deadline=None)
@given(
    fractions=fraction_lists,
    alpha=st.floats(0.001, 0.2),
    function=st.sampled_from(["kim-demets", "obrien-fleming", "pocock"]),
)
def test_design_properties(fractions: tuple[float, ...], alpha: float, function: str):
    plan = design(fractions, alpha, function)
    fixed = sps.norm.isf(alpha / 2)
    assert all(c > 0 for c in plan.critical)
    # each look's interval is at least as wide as the fixed-sample one: P(|Z_k| ≥ c_k) ≤ α(t_k) ≤ α
    assert all(c >= fixed - 1e-6 for c in plan.critical)
    assert all(b >= a - 1e-15 for a, b in zip(plan.spent, plan.spent[1:], strict=False))
    assert plan.spent[-1] == pytest.approx(alpha) and max(plan.spent) <= alpha + 1e-12
    assert plan.levels[-1] >= 1 - alpha - 1e-9
    # (O'Brien–Fleming-*type* boundaries need not fall at every look: with looks (0.875, 1) at α = 0.125 the last
    # boundary is 1.687 against 1.640 before it, confirmed by Monte Carlo; for the default looks they do fall)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), fractions=fraction_lists, minimum=st.integers(1, 100))
def test_look_sizes_properties(n: int, fractions: tuple[float, ...], minimum: int):
    sizes = look_sizes(n, fractions, minimum)
    assert sizes[-1] == n
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False))
    assert all(s >= minimum or s == n for s in sizes)
    planned = {min(n, max(1, math.ceil(t * n - 1e-9))) for t in fractions}
    assert set(sizes) <= planned | {n}
