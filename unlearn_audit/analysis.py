"""From counts to estimates, null bands and verdicts, one probe at a time (numpy only; the orchestration lives
in ``audit.py``).

Input: :class:`~unlearn_audit.probes.counts.ProbeCounts` for the forget set (and optionally a holdout set);
output: plain dataclasses that ``AuditResult`` serialises, plus the per-sample p-values that
:mod:`unlearn_audit.evidence` turns into flagged samples. Reference-free screening is in
:mod:`unlearn_audit.screening`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .comparisons import Series, band_from, margin_band, null_series, remedy, spread_measured, subject_series
from .policy import Band, Policy, Verdict, VerdictKind, classify, withhold_pass
from .stats.bootstrap import bootstrap_weights, interval
from .stats.intervals import Estimate
from .stats.pertest import calibrated_test, one_sided_exact
from .stats.ratio import TauStatistics, excess_rate, ratio_of_means, tau_statistics


@dataclass(frozen=True)
class StatsSettings:
    bootstrap: int = 2000
    method: str = "bca"
    level: float = 0.95
    seed: int = 0


def stats_rng(settings: StatsSettings, *labels: str) -> np.random.Generator:
    key = tuple(zlib.crc32(label.encode()) for label in labels)
    return np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(0x57A7, *key)))


@dataclass(frozen=True)
class TauRow:
    stats: TauStatistics
    null_values: tuple[float, ...] = ()
    null_band: Band | None = None
    R_norm: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "tau": s.tau,
            "R": _num(s.R.value),
            "R_ci": [_num(s.R.lo), _num(s.R.hi)],
            "r_paper": _num(s.r_paper.value),
            "r_paper_ci": [_num(s.r_paper.lo), _num(s.r_paper.hi)],
            "n_undefined": s.n_undefined,
            "frac_u_gt_v": s.frac_u_gt_v.to_dict(),
            "p_m": s.p_m.to_dict(),
            "p_a": s.p_a.to_dict(),
            "disagreement": s.disagreement.to_dict(),
            "bounds": {"lower": s.bound_lower.to_dict(), "upper": s.bound_upper.to_dict()},
            "null_values": [_num(v) for v in self.null_values],
            "null_band": self.null_band.to_dict() if self.null_band else None,
            "R_norm": self.R_norm.to_dict() if self.R_norm else None,
        }


@dataclass(frozen=True)
class ProbeAnalysis:
    name: str
    config: dict[str, Any]
    description: str
    adversarial: bool
    counts_toward_verdict: bool
    taus: list[TauRow]
    pooled: Estimate
    band: Band
    verdict: Verdict
    pooled_norm: Estimate | None = None
    band_norm: Band | None = None
    verdict_norm: VerdictKind | None = None
    histogram: dict[str, list[float]] = field(default_factory=dict)
    null_p_exact: list[np.ndarray] = field(default_factory=list, repr=False)
    retraining_dispersion: float | None = None
    excess: Estimate | None = None
    """Set when the verdict statistic is the excess rate D = p_m − p_ā (whole class forgotten; R undefined)."""
    access: str = "white-box"
    """How the rows were made: white-box, transfer (crafted on ``surrogate``), query-based or predictions-only."""
    surrogate: str | None = None

    @property
    def statistic(self) -> str:
        return "R" if self.excess is None else "excess"

    @property
    def decisive(self) -> tuple[str, Estimate]:
        """The statistic the verdict tested, with its short label: ``("R", pooled)`` or ``("D", excess)``."""
        return ("R", self.pooled) if self.excess is None else ("D", self.excess)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "excess_pooled": self.excess.to_dict() if self.excess else None,
            "name": self.name,
            "config": self.config,
            "description": self.description,
            "adversarial": self.adversarial,
            "counts_toward_verdict": self.counts_toward_verdict,
            "taus": [row.to_dict() for row in self.taus],
            "pooled": self.pooled.to_dict(),
            "null_band": self.band.to_dict(),
            "verdict": self.verdict.to_dict(),
            "R_norm_pooled": self.pooled_norm.to_dict() if self.pooled_norm else None,
            "R_norm_band": self.band_norm.to_dict() if self.band_norm else None,
            "R_norm_verdict": self.verdict_norm,
            "u_minus_v_histogram": self.histogram,
            "retraining_dispersion": self.retraining_dispersion,
            "access": self.access,
            **({"surrogate": self.surrogate} if self.surrogate is not None else {}),
        }


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def tau_mask(taus: np.ndarray, policy: Policy) -> np.ndarray:
    return (taus >= policy.tau_min - 1e-12) & (taus <= policy.tau_max + 1e-12)


def format_value(x: float) -> str:
    """A number for a reason text: three decimals, or ``n/a`` when undefined."""
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def _pooled(series: Series, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return series.u[:, mask].sum(axis=1), series.v.mean(axis=0)[:, mask].sum(axis=1)


def analyse_probe(
    counts: Any,
    subject: int,
    policy: Policy,
    settings: StatsSettings,
    verdict_level: float,
    description: str,
    holdout: Any | None = None,
    holdout_weights: np.ndarray | None = None,
) -> tuple[ProbeAnalysis, np.ndarray, np.ndarray]:
    """Estimates, band and verdict for one probe.

    Also returns per-sample p-values ``[2, N]`` (row 0: the exact test against these references, which decides
    the flags; row 1: the test calibrated against retraining variation) and pooled per-τ-average ``(u, v̄)``."""
    taus = np.asarray(counts.taus, dtype=float)
    mask = tau_mask(taus, policy)
    n = counts.correct.shape[2]
    weights = bootstrap_weights(stats_rng(settings, counts.probe, "forget"), n, settings.bootstrap)
    main = subject_series(counts, subject)
    rows = tau_statistics(taus, main.u, main.v, main.d, counts.draws, weights, settings.level, settings.method)
    nulls, null_method = null_series(counts, subject)
    n_refs = len(counts.references)
    floor = policy.band_floor if n_refs >= 2 else policy.single_reference_margin

    # per-τ null values and bands (display level)
    null_rows: list[list[Estimate]] = [[] for _ in taus]
    for s in nulls:
        v_bar = s.v.mean(axis=0)
        for t in range(len(taus)):
            null_rows[t].append(ratio_of_means(s.u[:, t], v_bar[:, t], weights, settings.level, settings.method))

    # R_norm with a holdout
    norm_rows: list[Estimate | None] = [None] * len(taus)
    pooled_norm = band_norm = None
    verdict_norm: VerdictKind | None = None
    h_weights = None
    if holdout is not None and n_refs >= 1:
        assert holdout_weights is not None
        nh = holdout.correct.shape[2]
        h_weights = bootstrap_weights(stats_rng(settings, counts.probe, "holdout"), nh, settings.bootstrap)
        h_main = subject_series(holdout, subject)
        for t in range(len(taus)):
            norm_rows[t] = _ratio_norm(
                main.u[:, t],
                main.v.mean(0)[:, t],
                h_main.u[:, t],
                h_main.v.mean(0)[:, t],
                holdout_weights,
                weights,
                h_weights,
                settings.level,
            )
        uf, vf = _pooled(main, mask)
        uh, vh = _pooled(h_main, mask)
        pooled_norm = _ratio_norm(uf, vf, uh, vh, holdout_weights, weights, h_weights, verdict_level)
        h_nulls, _ = null_series(holdout, subject)
        if nulls and h_nulls and len(nulls) == len(h_nulls):
            ests = []
            for s_f, s_h in zip(nulls, h_nulls, strict=True):
                a_u, a_v = _pooled(s_f, mask)
                b_u, b_v = _pooled(s_h, mask)
                ests.append(_ratio_norm(a_u, a_v, b_u, b_v, holdout_weights, weights, h_weights, verdict_level))
            band_norm = band_from(ests, floor, null_method)
        else:
            band_norm = margin_band(floor, null_method)
        verdict_norm = classify(pooled_norm.lo, pooled_norm.hi, band_norm)
        p = pooled_norm  # R_norm is never a pass inside an unmeasured band either
        verdict_norm, _ = withhold_pass(verdict_norm, band_norm, counts.probe, "R_norm", p.value, p.lo, p.hi, "")

    # pooled over the τ range: the verdict statistic
    u_pool, v_pool = _pooled(main, mask)
    pooled = ratio_of_means(u_pool, v_pool, weights, verdict_level, settings.method)
    if nulls:
        ests = [ratio_of_means(*_pooled(s, mask), weights, verdict_level, settings.method) for s in nulls]
        if null_method.startswith("swap"):
            e = ests[0]
            m = 1.0 + policy.single_reference_margin
            band = Band(e.lo / m, e.hi * m, null_method, (e.value,), spread_measured=False)
        else:
            band = band_from(ests, floor, null_method)
    else:
        band = margin_band(floor, null_method)

    t_count = int(mask.sum())
    trials = counts.draws * t_count
    kind = classify(pooled.lo, pooled.hi, band)
    reason = _probe_reason(counts.probe, kind, pooled, band, n, policy, taus[mask])
    evidence: dict[str, Any] = {"statistic": "R", "R": pooled.to_dict(), "band": band.to_dict()}
    excess = None
    p_a_pool = float(v_pool.sum() / (n * trials)) if n and trials else math.nan
    if n_refs >= 1 and p_a_pool < policy.whole_class_threshold:
        # The references (almost) never recognise these samples: a whole class they never learned. R = Σu/Σv̄ is
        # undefined, so the verdict tests the excess recognition rate D = p_m − p_ā against its own null band.
        excess, band = _excess_and_band(
            u_pool, v_pool, nulls, null_method, mask, trials, weights, policy, settings, verdict_level
        )
        kind = classify(excess.lo, excess.hi, band)
        reason = _excess_reason(counts.probe, kind, excess, band, p_a_pool, taus[mask])
        evidence = {"statistic": "excess", "D": excess.to_dict(), "p_a": p_a_pool, "band": band.to_dict()}
    if n < policy.min_samples:
        kind = "inconclusive"
        reason = _probe_reason(counts.probe, kind, pooled, band, n, policy, taus[mask])
    if (
        verdict_norm is not None
        and pooled_norm is not None
        and kind == "over_unlearning"
        and verdict_norm == "residual_knowledge"
    ):
        kind = "inconclusive"
        reason = (
            f"{counts.probe}: R = {format_value(pooled.value)} says over-unlearning, but the utility-normalised ratio "
            f"R_norm = {format_value(pooled_norm.value)} [{format_value(pooled_norm.lo)}, {format_value(pooled_norm.hi)}] says the model still "
            "favours its forget samples over unseen ones more than retrains do: damage everywhere may be masking "
            "residual knowledge."
        )
    label, decided = ("R", pooled) if excess is None else ("D", excess)
    args = (counts.probe, label, decided.value, decided.lo, decided.hi, remedy(null_method))
    kind, withheld = withhold_pass(kind, band, *args)  # a margin can back a finding, never a pass
    reason = withheld or reason

    # per-sample tests, pooled over the τ range: exact (vs these references) and calibrated (vs retraining)
    v_each = main.v[:, :, mask].sum(axis=2)  # [K, N]
    k = v_each.shape[0]
    p_exact = one_sided_exact(u_pool, v_each.sum(axis=0), trials, k * trials)
    # calibrated against retraining variation: ρ measured from the references (K ≥ 2) or the policy's default
    rho = None if k >= 2 else policy.single_reference_dispersion
    p_calibrated, rho_used = calibrated_test(u_pool, v_each, trials, rho)
    null_p: list[np.ndarray] = []
    if null_method.startswith("leave-one-out"):
        for s in nulls:
            s_v = s.v[:, :, mask].sum(axis=2)
            null_p.append(one_sided_exact(s.u[:, mask].sum(axis=1), s_v.sum(axis=0), trials, s_v.shape[0] * trials))
    diff = (u_pool - v_pool) / max(1, t_count)
    edges = np.linspace(-counts.draws, counts.draws, 41)
    hist, _ = np.histogram(diff, bins=edges)

    analysis = ProbeAnalysis(
        name=counts.probe,
        config={k2: v2 for k2, v2 in counts.probe_config.items() if k2 not in ("access", "surrogate")},
        description=description,
        adversarial=bool(counts.probe_config.get("adversarial", False)),
        access=counts.access,
        surrogate=counts.probe_config.get("surrogate"),
        counts_toward_verdict=policy.counts_probe(counts.probe),
        taus=[
            TauRow(
                rows[t],
                tuple(e.value for e in null_rows[t]),
                band_from(null_rows[t], 0.0, null_method) if null_rows[t] else None,
                norm_rows[t],
            )
            for t in range(len(taus))
        ],
        pooled=pooled,
        band=band,
        verdict=Verdict(kind, reason, evidence),
        excess=excess,
        pooled_norm=pooled_norm,
        band_norm=band_norm,
        verdict_norm=verdict_norm,
        histogram={"edges": edges.tolist(), "counts": hist.tolist()},
        null_p_exact=null_p,
        retraining_dispersion=rho_used,
    )
    return analysis, np.stack([p_exact, p_calibrated]), np.stack([u_pool, v_pool]) / max(1, t_count)


def _excess_and_band(
    u_pool: np.ndarray,
    v_pool: np.ndarray,
    nulls: list[Series],
    null_method: str,
    mask: np.ndarray,
    trials: int,
    weights: np.ndarray,
    policy: Policy,
    settings: StatsSettings,
    level: float,
) -> tuple[Estimate, Band]:
    excess = excess_rate(u_pool, v_pool, trials, weights, level, settings.method)
    margin = policy.whole_class_margin
    method = f"{null_method}; excess rate D = p_m − p_ā, floor ±{margin:.0%}"
    ests = [excess_rate(*_pooled(s, mask), trials, weights, level, settings.method) for s in nulls]
    finite = [e for e in ests if math.isfinite(e.lo) and math.isfinite(e.hi)]
    if not finite:
        return excess, Band(-margin, margin, method, spread_measured=False)
    lo = min(e.lo for e in finite)
    hi = max(e.hi for e in finite)
    if null_method.startswith("swap"):  # one reference: the seed spread is unmeasured, so widen by the margin
        lo, hi = lo - margin, hi + margin
    values, measured = tuple(e.value for e in ests), spread_measured(null_method)
    return excess, Band(min(lo, -margin), max(hi, margin), method, values, measured)


def _excess_reason(probe: str, kind: VerdictKind, excess: Estimate, band: Band, p_a: float, taus: np.ndarray) -> str:
    tau_text = f"τ in [{taus.min():.4g}, {taus.max():.4g}]" if taus.size else "no τ"
    lead = (
        f"{probe}: the retrained references recognise only {p_a:.1%} of the perturbed forget draws, so the forget "
        "set is a class they never learned and R is undefined; the test is on the excess recognition rate "
        f"D = p_m − p_ā = {format_value(excess.value)} [{format_value(excess.lo)}, {format_value(excess.hi)}] ({excess.level:.1%} CI, "
        f"{tau_text}) against the range honest retrains show, [{format_value(band.lo)}, {format_value(band.hi)}]"
    )
    if kind == "residual_knowledge":
        return lead + ": the model still recognises the forgotten class."
    if kind == "pass":
        return lead + ": consistent with retraining."
    if kind == "over_unlearning":
        return lead + ": below what retrains show."
    return lead + "; the interval straddles an edge of the range, more samples or references would decide."


def _ratio_norm(
    uf: np.ndarray,
    vf: np.ndarray,
    uh: np.ndarray,
    vh: np.ndarray,
    h_class: np.ndarray,
    wf: np.ndarray,
    wh: np.ndarray,
    level: float,
) -> Estimate:
    """R_norm = [p_m(F)/p_m(H)] / [p_a(F)/p_a(H)] = R_forget / R_holdout (holdout class-matched)."""
    r_f = uf.sum() / vf.sum() if vf.sum() > 0 else np.nan
    r_h = (h_class * uh).sum() / (h_class * vh).sum() if (h_class * vh).sum() > 0 else np.nan
    est = float(r_f / r_h) if np.isfinite(r_f) and np.isfinite(r_h) and r_h > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        rep_f = (wf @ uf) / (wf @ vf)
        whc = wh * h_class
        rep_h = (whc @ uh) / (whc @ vh)
        reps = rep_f / rep_h
    return interval(est, reps, level, "percentile")


def _probe_reason(
    probe: str, kind: VerdictKind, pooled: Estimate, band: Band, n: int, policy: Policy, taus: np.ndarray
) -> str:
    tau_text = f"τ in [{taus.min():.4g}, {taus.max():.4g}]" if taus.size else "no τ"
    ci = f"{format_value(pooled.value)} [{format_value(pooled.lo)}, {format_value(pooled.hi)}] ({pooled.level:.1%} CI, {tau_text})"
    band_text = f"[{format_value(band.lo)}, {format_value(band.hi)}] ({band.method})"
    if n < policy.min_samples:
        return f"{probe}: only {n} forget samples (< {policy.min_samples}); too few for a verdict."
    if kind == "residual_knowledge":
        return (
            f"{probe}: the model recognises perturbed forget samples R = {ci} times as often as retrained references, "
            f"above the range honest retrains show, {band_text}."
        )
    if kind == "over_unlearning":
        return (
            f"{probe}: the model recognises perturbed forget samples only R = {ci} times as often as retrained "
            f"references, below the range honest retrains show, {band_text}: a detectable over-unlearning fingerprint."
        )
    if kind == "pass":
        return f"{probe}: R = {ci} lies inside the range honest retrains show, {band_text}."
    return f"{probe}: R = {ci} straddles the edge of the range honest retrains show, {band_text}; more samples or references would decide."
