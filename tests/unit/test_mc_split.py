"""``--draws auto``'s statistics (stats/mcsplit.py) on simulated binomial data: pure numpy, fast.

The simulation is a random-effects model: every forget sample has its own true recognition rates per τ (logit-normal
around a τ-dependent mean, shared between the audited model and the reference so that the two covary as real
models do), and the counts are binomial draws from them. Its true between-sample variance B and within-sample
per-draw variance W are known exactly, so the estimates can be checked against them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn_audit.stats.mcsplit import MAX_DRAWS, MIN_DRAWS, VarianceSplit, choose_draws, split_variance


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def population(rng: np.random.Generator, n: int, taus: int = 4, spread: float = 1.0, whole_class: bool = False):
    """True per-sample rates ``(p_m [N, T], p_a [N, T])``: recognition falls with τ, samples differ by ``spread``."""
    level = np.linspace(2.0, -1.0, taus)[None, :]
    shared = rng.normal(size=(n, 1)) * spread
    p_m = _expit(level + 0.4 + shared + 0.3 * spread * rng.normal(size=(n, 1)))
    p_a = _expit(level + shared + 0.3 * spread * rng.normal(size=(n, 1)))
    if whole_class:
        p_a = np.full_like(p_a, 0.002)
    return p_m, p_a


def truth(p_m: np.ndarray, p_a: np.ndarray, statistic: str = "R") -> tuple[float, float]:
    """(B, W) of the finite population: B = Var(ζ), W = mean Σ_t Var per draw (model and reference independent)."""
    ratio = p_m.sum() / p_a.sum() if statistic == "R" else 1.0
    zeta = p_m.sum(axis=1) - ratio * p_a.sum(axis=1)
    zeta = zeta - zeta.mean()
    within = (p_m * (1 - p_m) + ratio**2 * p_a * (1 - p_a)).sum(axis=1).mean()
    return float(zeta.var(ddof=1)), float(within)


def counts(rng: np.random.Generator, p_m: np.ndarray, p_a: np.ndarray, draws: int, replicates: int = 1):
    """Independent binomial counts ``u [R, N, T]`` and ``v [R, 1, N, T]`` (one reference)."""
    shape = (replicates, *p_m.shape)
    return rng.binomial(draws, np.broadcast_to(p_m, shape)), rng.binomial(draws, np.broadcast_to(p_a, shape))[:, None]


@pytest.mark.parametrize(("whole_class", "draws"), [(False, 20), (False, 5), (True, 20)])
def test_split_recovers_the_simulated_truth(whole_class, draws):
    """Averaged over 300 simulated pilots on one population, the estimates of B and W match the population's
    truth within 4 Monte-Carlo standard errors of that average plus 2 % of the total variance (the estimators are
    unbiased given the population up to O(1/N) terms from estimating R; at N = 400 they are ≪ 2 %)."""
    rng = np.random.default_rng(7)
    p_m, p_a = population(rng, 400, whole_class=whole_class)
    statistic = "D" if whole_class else "R"
    b_true, w_true = truth(p_m, p_a, statistic)
    u, v = counts(rng, p_m, p_a, draws, replicates=300)
    splits = [split_variance(u[r], v[r], draws) for r in range(u.shape[0])]
    assert {s.statistic for s in splits} == {statistic}
    between = np.array([s.between for s in splits])
    within = np.array([s.within for s in splits])
    slack = 0.02 * (b_true + w_true / draws)
    assert abs(between.mean() - b_true) <= 4 * between.std(ddof=1) / math.sqrt(len(splits)) + slack
    assert (
        abs(within.mean() / draws - w_true / draws) <= 4 * within.std(ddof=1) / draws / math.sqrt(len(splits)) + slack
    )
    # one pilot alone is close too: W is an average over 400 samples, B a variance over them
    assert within[0] == pytest.approx(w_true, rel=0.1)


def test_shared_draws_make_the_within_part_an_overstatement():
    """Model and two references on the same draws (a draw recognised by the model is recognised by the references
    when their rates allow: comonotone), as the engine does: the estimated MC part is at least the true one."""
    rng = np.random.default_rng(3)
    p_m, p_a = population(rng, 300)
    draws, reps = 20, 200
    uniform = rng.random((reps, 300, 4, draws))
    u = (uniform < p_m[None, :, :, None]).sum(axis=-1)
    v = np.stack([(uniform < p_a[None, :, :, None]).sum(axis=-1)] * 2, axis=1)  # two identical references
    ratio = p_m.sum() / p_a.sum()
    z = (u - ratio * v.mean(axis=1)).sum(axis=2) / draws  # [reps, N]
    mc_true = float(z.var(axis=0, ddof=1).mean())  # per-sample variance across draw replicates
    estimates = [split_variance(u[r], v[r], draws).within / draws for r in range(reps)]
    assert np.mean(estimates) > mc_true


def test_tau_mask_and_shapes():
    rng = np.random.default_rng(0)
    p_m, p_a = population(rng, 50)
    u, v = counts(rng, p_m, p_a, 10)
    full = split_variance(u[0], v[0], 10)
    first = split_variance(u[0], v[0], 10, np.array([True, False, False, False]))
    assert first.within < full.within
    with pytest.raises(ValueError, match="shape"):
        split_variance(u[0], v[0][0], 10)
    with pytest.raises(ValueError, match="2 draws"):
        split_variance(u[0], v[0], 1)
    with pytest.raises(ValueError, match="τ"):
        split_variance(u[0], v[0], 10, np.zeros(4, dtype=bool))


def test_deterministic_cells_carry_no_monte_carlo_noise():
    """All-or-nothing cells (τ = 0, untargeted FGSM) have W = 0: the fewest draws do."""
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2, size=(40, 3)) * 10
    v = rng.integers(0, 2, size=(2, 40, 3)) * 10
    split = split_variance(u, v, 10)
    assert split.within == 0
    assert choose_draws(split).draws == MIN_DRAWS


splits = st.builds(
    VarianceSplit,
    statistic=st.just("R"),
    estimate=st.just(1.0),
    total=st.just(1.0),
    between=st.one_of(st.just(0.0), st.floats(1e-9, 10)),
    within=st.one_of(st.just(0.0), st.floats(1e-9, 10)),
    draws=st.just(20),
    samples=st.just(64),
)


@settings(max_examples=300, deadline=None)
@given(splits, st.floats(0.01, 0.98), st.floats(0.01, 0.98))
def test_draws_are_monotone_in_the_share(split, s1, s2):
    low, high = sorted((s1, s2))
    assert choose_draws(split, low).draws >= choose_draws(split, high).draws


@settings(max_examples=300, deadline=None)
@given(splits, st.floats(0.01, 0.5))
def test_draws_are_the_fewest_that_meet_the_share(split, share):
    choice = choose_draws(split, share)
    assert MIN_DRAWS <= choice.draws <= MAX_DRAWS
    if choice.clipped is None:
        assert choice.achieved_share <= share * (1 + 1e-9)
        assert split.mc_share(choice.draws - 1) > share or choice.draws == MIN_DRAWS
    elif choice.clipped == "max":
        assert split.mc_share(MAX_DRAWS) > share * (1 - 1e-9)
    else:
        assert split.mc_share(MIN_DRAWS) <= share * (1 + 1e-9)


@given(st.floats(1e-6, 10), st.floats(0.01, 0.5))
def test_no_spread_between_samples_takes_the_most_draws(within, share):
    split = VarianceSplit("R", 1.0, within / 20, 0.0, within, 20, 64)
    choice = choose_draws(split, share)
    assert (choice.draws, choice.clipped) == (MAX_DRAWS, "max")
    assert choose_draws(split, share, hi=300).draws == 300


def test_bad_share_and_bounds():
    split = VarianceSplit("R", 1.0, 1.0, 1.0, 1.0, 20, 64)
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="share"):
            choose_draws(split, share)
    with pytest.raises(ValueError, match="bounds"):
        choose_draws(split, 0.1, lo=5, hi=4)


@pytest.mark.parametrize("spread", [0.6, 1.0])
def test_the_chosen_draws_meet_the_target_on_a_fresh_simulation(spread):
    """Pilot (400 samples, 20 draws) → c* for a 10 % target; then fresh samples of the same random-effects model:

    * exactly, on a fresh population of 200 000 samples (B and W known): the share at c* is ≤ 12 % (the pilot's B
      has a relative standard error of about √(2/399) ≈ 7 %, which moves the share by about as much);
    * empirically, 300 fresh forget sets of 200 samples × 20 draw replicates each at c*: the Monte-Carlo share of
      R's variance, (variance across draw replicates) / (variance across sets and draws), is within [5 %, 15 %]
      (this measurement's own relative standard error is about √(2/299) ≈ 8 %)."""
    rng = np.random.default_rng(11)
    p_m, p_a = population(rng, 400, spread=spread)
    u, v = counts(rng, p_m, p_a, 20)
    choice = choose_draws(split_variance(u[0], v[0], 20), 0.10)
    assert choice.clipped is None
    c = choice.draws
    b_fresh, w_fresh = truth(*population(rng, 200_000, spread=spread))
    exact = (w_fresh / c) / (b_fresh + w_fresh / c)
    pops, reps, n = 300, 20, 200
    ratios = np.empty((pops, reps))
    for k in range(pops):
        q_m, q_a = population(rng, n, spread=spread)
        uu, vv = counts(rng, q_m, q_a, c, replicates=reps)
        ratios[k] = uu.sum(axis=(1, 2)) / vv.sum(axis=(1, 2, 3))
    measured = ratios.var(axis=1, ddof=1).mean() / ratios.var(ddof=1)
    print(f"spread {spread}: c* = {c}, MC share exact {exact:.3f}, measured {measured:.3f} (target 0.10)")
    assert exact <= 0.12
    assert 0.05 <= measured <= 0.15
