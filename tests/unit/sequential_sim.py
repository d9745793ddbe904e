"""A synthetic audit world and the sequential audit procedure, for the simulation tests of issue 16
(``test_sequential_simulation.py``). Pure numpy; the verdicts come from the real :func:`analyse_probe`.

**Generating model** (one random probe, ``T`` τ values, ``c`` shared draws per sample and τ, models
``[subject, ref_1 … ref_K]``). Model ``j`` recognises a draw of forget sample ``i`` at ``τ_t`` with probability

    p_ijt = σ(μ_i + g_j + e_ij − β·τ_t + δ·[j = subject])

* ``μ_i ~ N(m, s_b)``: how easy sample i is (between-sample heterogeneity);
* ``e_ij ~ N(0, s_r)``: how retrain j happens to treat sample i (honest retrains differ per sample, SPEC §4's
  third source);
* ``g_j ~ N(0, s_g)``: a model-level effect (a retrain that is a little better or worse overall);
* ``β``: recognition falls as the perturbation grows; ``δ``: residual knowledge of the subject (0 = honest).

Draws are shared by the models, as in a random probe: each draw carries a Gaussian-copula latent shared by
all models (correlation ``coupling``), so ``correct`` counts are Binomial(c, p_ijt) per model with positively
correlated outcomes on the same draw, and ``disagree`` counts the draws on which a model and the subject
differ (what the engine counts against the anchor, the subject).

**What the intervals target.** The bootstrap resamples forget samples: it treats ``(μ_i, e_i·)`` and the draws as
random and the models as given. Its target is therefore the population ratio for *these* models,

    R(g) = Σ_t E[σ(μ + g_0 + e_0 + δ − βτ_t)] / mean_j Σ_t E[σ(μ + g_j + e_j − βτ_t)],

an expectation over a fresh sample (μ, e) with the model effects ``g`` of the simulated audit fixed; it is not
1 for an honest retrain unless ``g_0`` equals the references' (retraining randomness is what the null band is
for, not the interval). ``μ + e_j`` is normal, so each expectation is a one-dimensional logistic-normal
integral, computed by Gauss–Hermite quadrature (:func:`true_ratio`; a test checks it against Monte Carlo over
a large population).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
from scipy import special

from unlearn_audit import analysis as analysis_module
from unlearn_audit.analysis import StatsSettings, analyse_probe
from unlearn_audit.policy import Policy, VerdictKind
from unlearn_audit.probes.counts import ProbeCounts
from unlearn_audit.stats.sequential import design, look_sizes


@dataclass(frozen=True)
class World:
    """Parameters of the generating model (module docstring). Logit scale."""

    n: int = 320
    taus: tuple[float, ...] = (0.0, 4 / 255, 8 / 255)
    draws: int = 30
    references: int = 3
    base_mean: float = 0.8
    base_sd: float = 1.5
    retrain_sd: float = 0.6
    model_sd: float = 0.0
    slope: float = 30.0
    """Logit drop per unit τ (pixel scale): 0.94 at τ = 8/255."""
    coupling: float = 0.5
    residual: float = 0.0


@dataclass(frozen=True)
class SimulatedAudit:
    counts: ProbeCounts
    model_effects: np.ndarray
    """``g_j`` of the simulated models, subject first."""


def simulate_counts(world: World, rng: np.random.Generator) -> SimulatedAudit:
    """One audit's counts, laid out as the engine does for a random probe: one block (anchored at the subject),
    models ``[subject, ref_1 … ref_K]``."""
    n, t, c, m = world.n, len(world.taus), world.draws, world.references + 1
    g = rng.normal(0.0, world.model_sd, size=m) if world.model_sd > 0 else np.zeros(m)
    mu = rng.normal(world.base_mean, world.base_sd, size=n)
    e = rng.normal(0.0, world.retrain_sd, size=(m, n))
    shift = np.zeros(m)
    shift[0] = world.residual
    logit = (mu[None, :, None] + (g + shift)[:, None, None] + e[:, :, None]) - world.slope * np.asarray(world.taus)
    threshold = special.ndtri(special.expit(logit))  # [M, N, T]: correct when the latent is below Φ⁻¹(p)
    shared = rng.standard_normal((1, n, t, c))
    own = rng.standard_normal((m, n, t, c))
    latent = math.sqrt(world.coupling) * shared + math.sqrt(1.0 - world.coupling) * own
    hit = latent < threshold[..., None]  # [M, N, T, c]
    correct = hit.sum(axis=3).astype(np.int64)
    disagree = (hit != hit[:1]).sum(axis=3).astype(np.int64)
    counts = ProbeCounts(
        probe="gaussian",
        probe_config={"adversarial": False},
        taus=np.asarray(world.taus, dtype=float),
        draws=c,
        sample_ids=tuple(f"s{i}" for i in range(n)),
        labels=np.zeros(n, dtype=np.int64),
        models=("subject", *(f"ref{k + 1}" for k in range(world.references))),
        crafted_on=(0,),
        correct=correct[None],
        disagree=disagree[None],
    )
    return SimulatedAudit(counts, g)


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(x) φ(x) dx ≈ Σ w f(x) / √(2π)


def true_ratio(world: World, model_effects: np.ndarray) -> float:
    """The population R for these models (module docstring), by Gauss–Hermite quadrature."""
    sd = math.hypot(world.base_sd, world.retrain_sd)
    shift = np.asarray(model_effects, dtype=float).copy()
    shift[0] += world.residual
    taus = np.asarray(world.taus, dtype=float)
    x = world.base_mean + shift[:, None, None] - world.slope * taus[None, :, None] + sd * _NODES[None, None, :]
    rates = special.expit(x) @ _WEIGHTS / math.sqrt(2.0 * math.pi)  # [M, T]
    per_model = rates.sum(axis=1)
    return float(per_model[0] / per_model[1:].mean())


@contextmanager
def verdicts_only() -> Iterator[None]:
    """Skip the calibrated per-sample test inside :func:`analyse_probe` (a beta-binomial posterior per sample): it
    feeds the per-sample flags, never the probe's interval, band or verdict.
    ``test_skipping_the_per_sample_test_leaves_the_verdict_alone`` holds this module to that claim."""

    def skipped(u: np.ndarray, v_refs: np.ndarray, trials: int, rho: float | None = None, **_: Any) -> Any:
        return np.ones(np.asarray(u).shape[0]), 0.5 if rho is None else rho

    with mock.patch.object(analysis_module, "calibrated_test", skipped):
        yield


DECIDED = frozenset({"pass", "residual_knowledge", "over_unlearning"})
FINDINGS = frozenset({"residual_knowledge", "over_unlearning"})


@dataclass(frozen=True)
class Look:
    samples: int
    level: float
    kind: VerdictKind
    lo: float
    hi: float
    band: tuple[float, float]


@dataclass(frozen=True)
class Outcome:
    """One sequential audit of one counted probe."""

    looks: tuple[Look, ...]
    """Every look taken, the last being the one the audit stopped at."""
    n: int

    @property
    def stopped(self) -> Look:
        return self.looks[-1]

    @property
    def kind(self) -> VerdictKind:
        return self.stopped.kind

    @property
    def finding(self) -> bool:
        return self.kind in ("residual_knowledge", "over_unlearning")

    @property
    def share_used(self) -> float:
        return self.stopped.samples / self.n


def look_levels(
    n: int, fractions: Sequence[float], alpha: float, spending: str, policy: Policy
) -> list[tuple[int, float]]:
    """(samples, interval level) at each look. ``spending="fixed"`` is the naive design: the full audit's level
    ``1 − alpha`` at every look (repeated testing without correction). The design is computed on the information
    fractions actually reached (``size / n`` after :func:`look_sizes`), as Lan–DeMets spending prescribes."""
    sizes = look_sizes(n, fractions, policy.min_samples)
    if spending == "fixed":
        return [(s, 1.0 - alpha) for s in sizes]
    plan = design([s / n for s in sizes], alpha, spending)
    return list(zip(sizes, plan.levels, strict=True))


def sequential_audit(
    counts: ProbeCounts,
    levels: Sequence[tuple[int, float]],
    policy: Policy,
    settings: StatsSettings,
    order: np.ndarray,
    stop_on: frozenset[str] = DECIDED,
) -> Outcome:
    """Analyse the samples ``order[:size]`` at each look with the real :func:`analyse_probe` at that look's level,
    stopping at the first look whose verdict is in ``stop_on`` (default: decided, i.e. the interval lies wholly
    above, below or inside the band); the last look's verdict stands otherwise."""
    looks: list[Look] = []
    for size, level in levels:
        seen = counts.take(order[:size])
        result, _, _ = analyse_probe(seen, 0, policy, settings, level, "simulated gaussian probe")
        _, estimate = result.decisive
        band = (result.band.lo, result.band.hi)
        looks.append(Look(size, level, result.verdict.kind, estimate.lo, estimate.hi, band))
        if result.verdict.kind in stop_on:
            break
    return Outcome(tuple(looks), counts.correct.shape[2])
