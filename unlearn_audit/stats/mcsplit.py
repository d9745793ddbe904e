"""Draws chosen by precision (``--draws auto``): split a pilot's variance into its between-sample and Monte-Carlo
parts, and pick the fewest draws that keep the Monte-Carlo share small (numpy only).

The verdict statistic pools the τ range: per forget sample ``i``, ``a_i = Σ_t u_it / c`` and ``b_i = Σ_t v̄_it / c``
(the audited model's and the references' mean recognition rates, summed over the counted τ; ``c`` draws per cell).
``R = Σa / Σb`` is a ratio of means; linearised, its variance is ``Var(R) ≈ N·Var(z) / (Σb)²`` with the per-sample
statistic ``z_i = a_i − R·b_i``. For a whole-class forget set (the references recognise almost none of the draws,
R undefined) the verdict tests the excess rate ``D = p_m − p̄_a`` and ``z_i = a_i − b_i``.

Random-effects model: ``z_i = ζ_i + ε_i``, where ``ζ_i`` is sample i's value with infinitely many draws and
``ε_i`` the Monte-Carlo error of its ``c`` draws, so across samples ``Var(z) = B + W/c``:

* ``W`` (within, per draw) is estimated by the method of moments from the binomial variance of every (sample, τ)
  cell: ``p(1 − p)`` has the unbiased estimator ``p̂(1 − p̂)·c/(c − 1)``. The cells of one sample are independent
  (every (sample, τ) unit has its own seed), so their variances add. The audited model's and the references'
  counts come from the *same* draws, so they covary: positively between the model and a reference, and between
  references. Var(z) carries ``−2R·Cov(model, references)``; ignoring that positive covariance **overstates** the
  Monte-Carlo part. The references' mean is bounded by treating them as perfectly correlated
  (``Var(mean) ≤ (mean of standard deviations)²``), which again **overstates** it. Both errors lean toward more
  draws, never fewer.
* ``B`` (between) = total − within, the total being the sample variance of ``z``; floored at 0.

The Monte-Carlo share of R's variance at ``c`` draws is ``(W/c) / (B + W/c)``. The fewest draws that keep it at
or below ``share`` are ``c* = ⌈W·(1 − share) / (share·B)⌉``, clipped to ``[lo, hi]`` (default
[:data:`MIN_DRAWS`, :data:`MAX_DRAWS`]; the result says when it was clipped). ``B = 0`` with ``W > 0`` (no
measurable spread between samples) gives ``hi``; ``W = 0`` (every draw of a cell agrees: no Monte-Carlo noise)
gives ``lo``.

The pilot's B is itself an estimate: with n pilot samples its relative standard error is about
``√(2/(n − 1))`` for normal-ish z (18 % at n = 64), which moves c* by about as much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

MIN_DRAWS = 2
"""Fewest draws ``--draws auto`` picks: the within-sample variance estimator needs two draws."""
MAX_DRAWS = 1000
"""Most draws ``--draws auto`` picks (10× the paper's 100): past this the between-sample spread is ~0 and more
draws cannot buy precision that more samples would."""


@dataclass(frozen=True)
class VarianceSplit:
    """The pilot's variance split of one probe's verdict statistic, per forget sample (rates per draw)."""

    statistic: Literal["R", "D"]
    estimate: float
    """The statistic's pilot value (R, or D for a whole class)."""
    total: float
    """Sample variance of the linearised per-sample statistic z at the pilot's draws."""
    between: float
    """Between-sample part B (floored at 0)."""
    within: float
    """Within-sample Monte-Carlo variance per draw W: at c draws the MC part is W / c."""
    draws: int
    samples: int

    def mc_share(self, draws: int | float) -> float:
        """Share of the statistic's variance that Monte-Carlo noise makes at ``draws`` draws (0 when none)."""
        mc = self.within / float(draws)
        total = self.between + mc
        return float(mc / total) if total > 0 else 0.0


@dataclass(frozen=True)
class DrawsChoice:
    """The draws picked for one probe, and why."""

    split: VarianceSplit
    share: float
    """The target: the largest Monte-Carlo share allowed."""
    draws: int
    clipped: Literal["min", "max"] | None
    """Set when the unclipped choice fell outside ``[lo, hi]``."""
    bounds: tuple[int, int]

    @property
    def achieved_share(self) -> float:
        return self.split.mc_share(self.draws)

    def to_dict(self) -> dict[str, Any]:
        s = self.split
        return {
            "statistic": s.statistic,
            "estimate": _num(s.estimate),
            "between_variance": _num(s.between),
            "within_variance_per_draw": _num(s.within),
            "pilot_mc_share": _num(s.mc_share(s.draws)),
            "target_share": self.share,
            "draws": self.draws,
            "mc_share": _num(self.achieved_share),
            "clipped": self.clipped,
            "bounds": list(self.bounds),
        }


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _cell_variance(counts: np.ndarray, draws: int) -> np.ndarray:
    """Unbiased estimate of ``p(1 − p)`` per cell from ``counts`` successes out of ``draws``."""
    p = np.asarray(counts, dtype=float) / draws
    return p * (1.0 - p) * draws / (draws - 1)


def split_variance(
    u: np.ndarray,
    v_refs: np.ndarray,
    draws: int,
    mask: np.ndarray | None = None,
    *,
    whole_class_threshold: float = 0.01,
) -> VarianceSplit:
    """Between/within split of the pooled statistic's per-sample variance (module docstring).

    ``u``: the audited model's correct counts ``[N, T]``; ``v_refs``: the references' ``[K, N, T]``, on the same
    draws; ``draws``: ``c`` per cell (≥ 2); ``mask``: the τ that count (default all). The statistic is D instead of R
    when the references recognise less than ``whole_class_threshold`` of the counted draws, as in the verdict."""
    u = np.asarray(u, dtype=float)
    v_refs = np.asarray(v_refs, dtype=float)
    if v_refs.ndim != 3 or u.shape != v_refs.shape[1:]:
        raise ValueError(f"shape mismatch: u {u.shape}, v_refs {v_refs.shape}; want [N, T] and [K, N, T]")
    if draws < 2:
        raise ValueError(f"draws {draws}: the within-sample variance needs at least 2 draws per cell")
    mask = np.ones(u.shape[1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n, t_count = u.shape[0], int(mask.sum())
    if n < 2 or t_count == 0:
        raise ValueError(f"{n} samples and {t_count} τ values: the split needs at least 2 samples and one τ")
    u, v_refs = u[:, mask], v_refs[:, :, mask]
    a = u.sum(axis=1) / draws
    b = v_refs.mean(axis=0).sum(axis=1) / draws
    p_a = float(b.sum() / (n * t_count))
    whole_class = p_a < whole_class_threshold
    if whole_class:
        statistic: Literal["R", "D"] = "D"
        ratio = 1.0
        estimate = float((a.sum() - b.sum()) / (n * t_count))
    else:
        statistic, ratio = "R", float(a.sum() / b.sum())
        estimate = ratio
    z = a - ratio * b
    total = float(z.var(ddof=1))
    w_model = _cell_variance(u, draws).sum(axis=1)  # [N]
    sd_refs = np.sqrt(_cell_variance(v_refs, draws)).mean(axis=0)  # [N, T]: perfectly correlated bound
    within = float((w_model + ratio**2 * (sd_refs**2).sum(axis=1)).mean())
    between = max(0.0, total - within / draws)
    return VarianceSplit(statistic, estimate, total, between, within, int(draws), n)


def choose_draws(split: VarianceSplit, share: float = 0.10, lo: int = MIN_DRAWS, hi: int = MAX_DRAWS) -> DrawsChoice:
    """The fewest draws whose Monte-Carlo share ``W/c / (B + W/c)`` is at most ``share``, clipped to ``[lo, hi]``."""
    if not 0 < share < 1:
        raise ValueError(f"share {share}: must be in (0, 1)")
    if not 1 <= lo <= hi:
        raise ValueError(f"draw bounds [{lo}, {hi}]: need 1 <= lo <= hi")
    if split.within <= 0:
        needed = 0.0
    else:
        denominator = share * split.between
        needed = split.within * (1.0 - share) / denominator if denominator > 0 else math.inf
    # the smallest integer c with c >= needed; a relative tolerance keeps an exact boundary from rounding up
    wanted = math.inf if math.isinf(needed) else math.ceil(needed * (1 - 1e-12))
    clipped: Literal["min", "max"] | None = None
    if wanted < lo:
        draws, clipped = lo, "min"
    elif wanted > hi:
        draws, clipped = hi, "max"
    else:
        draws = int(wanted)
    return DrawsChoice(split, share, int(draws), clipped, (lo, hi))
