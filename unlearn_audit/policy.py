"""Verdict rules. A :class:`Policy` holds every threshold; its values are printed with every verdict.

Per probe, the audited model's ratio R, pooled over the policy's τ range, is compared with the **null band**:
the range of R that honest retrains produce under the same procedure.

* ``residual_knowledge``: the whole confidence interval of R lies above the band;
* ``over_unlearning``: the whole interval lies below the band;
* ``pass``: the interval lies inside the band, and the band was *measured* (K ≥ 2 references, each audited
  against the others the same way);
* ``inconclusive``: the interval straddles an edge of the band, or there are too few samples, or the interval
  lies inside a band that is only a documented margin (one reference; adversarial inputs not crafted on the
  references). A margin can back a finding, never a ``pass``: the retraining spread it stands in for ranges from
  0.3 % to 12 % on our panels, so a real residual of a few percent hides inside any margin wide enough to spare
  honest retrains (:func:`withhold_pass`).

Confidence levels are Bonferroni-corrected across the probes that count, so the chance of a false finding
on an honest retrain is at most ``alpha`` (given the band). Overall: any probe with residual knowledge makes
the overall verdict ``residual_knowledge`` (the finding that matters to a data subject; over-unlearning on
another probe is named in the reason); otherwise any over-unlearning gives ``over_unlearning``; otherwise all
counted probes must pass for ``pass``; anything else is ``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from .errors import ConfigError

VerdictKind = Literal["pass", "residual_knowledge", "over_unlearning", "inconclusive"]
EXIT_CODE_FOR: dict[str, int] = {"pass": 0, "residual_knowledge": 1, "over_unlearning": 1, "inconclusive": 3}


@dataclass(frozen=True)
class Policy:
    """Thresholds and rules that turn estimates into verdicts."""

    alpha: float = 0.05
    """Family-wise error rate of a false finding, split (Bonferroni) over the probes that count."""
    fdr: float = 0.05
    """False-discovery rate for the per-sample flags (Benjamini–Hochberg)."""
    tau_min: float = 0.0
    tau_max: float = math.inf
    """The τ range that counts toward the verdict (inclusive)."""
    probes: tuple[str, ...] | None = None
    """Probes that count toward the verdict; None = every probe that was run."""
    single_reference_margin: float = 0.15
    """With one reference the seed-to-seed spread of retraining cannot be measured; the null band is widened
    by this factor (R within [1/1.15, 1.15] for random probes). A second retrain on the Fashion-MNIST panel
    reads R = 1.08-1.12 against the first (SPEC §4), so 0.15 covers it."""
    single_reference_dispersion: float = 0.8
    """With one reference, the per-sample test cannot measure how much retraining seeds disagree on a sample;
    this intra-class correlation stands in (0.84 was measured across the four Fashion-MNIST retrains)."""
    band_floor: float = 0.02
    """With K ≥ 2 references the null band is never narrower than [1/(1+floor), 1+floor]."""
    min_samples: int = 20
    """Fewer forget samples than this: every verdict is inconclusive."""
    screening_margin: float = 0.10
    """Reference-free screening flags residual knowledge only when R_proxy's lower bound exceeds 1 + margin
    (and the holdout's own split-half band)."""

    whole_class_threshold: float = 0.01
    """When the references recognise fewer than this share of the perturbed forget draws (pooled over the τ
    range), the forget set is a class they never learned: R = Σu/Σv̄ is undefined, and the verdict uses the
    excess recognition rate D = p_m − p_ā instead (ours)."""
    whole_class_margin: float = 0.02
    """Absolute half-width floor of the null band for D: an honest retrain of a removed class may still call a
    few perturbed draws by that class (2 percentage points)."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.fdr < 1:
            raise ConfigError(f"policy: alpha and fdr must be in (0, 1), got {self.alpha}, {self.fdr}")
        if self.tau_min > self.tau_max:
            raise ConfigError(f"policy: tau_min {self.tau_min} > tau_max {self.tau_max}")
        if not 0 < self.single_reference_dispersion < 1:
            raise ConfigError("policy: single_reference_dispersion must be in (0, 1)")
        if not 0 <= self.whole_class_threshold < 1:
            raise ConfigError("policy: whole_class_threshold must be in [0, 1)")
        if min(self.single_reference_margin, self.band_floor, self.screening_margin, self.whole_class_margin) < 0:
            raise ConfigError("policy: margins must be >= 0")

    def counts_probe(self, name: str) -> bool:
        return self.probes is None or name in self.probes

    def verdict_level(self, n_probes: int) -> float:
        return 1.0 - self.alpha / max(1, n_probes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """The inverse of :meth:`to_dict` (a report's ``policy``); unknown keys are a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"policy: unknown field(s) {', '.join(unknown)} (this release knows {', '.join(sorted(known))})"
            )
        values = dict(data)
        if values.get("tau_max", 0.0) is None:
            values["tau_max"] = math.inf
        if values.get("probes") is not None:
            values["probes"] = tuple(values["probes"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tau_max"] = None if math.isinf(self.tau_max) else self.tau_max
        out["probes"] = list(self.probes) if self.probes is not None else None
        return out

    def describe(self) -> str:
        tau_hi = "∞" if math.isinf(self.tau_max) else f"{self.tau_max:.4g}"
        probes = "all probes run" if self.probes is None else ", ".join(self.probes)
        return (
            f"policy: alpha={self.alpha} (Bonferroni over probes), per-sample FDR={self.fdr}, τ in "
            f"[{self.tau_min:.4g}, {tau_hi}], probes counted: {probes}, one-reference margin "
            f"±{self.single_reference_margin:.0%}, band floor ±{self.band_floor:.0%}, min samples {self.min_samples}"
        )


@dataclass(frozen=True)
class Band:
    """The range of R an honest retrain produces, and how it was obtained."""

    lo: float
    hi: float
    method: str
    values: tuple[float, ...] = ()
    spread_measured: bool = True
    """False when no honest retrain was audited against another (one reference, or adversarial inputs not crafted
    on the references): the band is then a documented margin, which can back a finding but never a ``pass``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "method": self.method,
            "values": list(self.values),
            "spread_measured": self.spread_measured,
        }


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODE_FOR[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "evidence": self.evidence}


def classify(lo: float, hi: float, band: Band) -> VerdictKind:
    """One interval against one band."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if lo > band.hi:
        return "residual_knowledge"
    if hi < band.lo:
        return "over_unlearning"
    if band.lo <= lo and hi <= band.hi:
        return "pass"
    return "inconclusive"


def withhold_pass(
    kind: VerdictKind, band: Band, probe: str, label: str, value: float, lo: float, hi: float, remedy: str
) -> tuple[VerdictKind, str | None]:
    """``pass`` inside an unmeasured band becomes ``inconclusive``, with a reason that says what the interval ruled
    out and what it could not; any other verdict (and a pass inside a measured band) is kept (reason ``None``).

    ``label`` is the statistic (``R``, ``D`` or ``R_norm``), ``value [lo, hi]`` its estimate and interval, and
    ``remedy`` what would measure the spread (e.g. "add a second retrained reference")."""
    if kind != "pass" or band.spread_measured:
        return kind, None
    relative = f" ({lo - 1:+.1%} to {hi - 1:+.1%} recognition against the reference)" if label != "D" else ""
    return "inconclusive", (
        f"{probe}: {label} = {value:.3f} [{lo:.3f}, {hi:.3f}] lies inside the margin [{band.lo:.3f}, {band.hi:.3f}] "
        f"({band.method}). Ruled out: {label} above {hi:.3f} or below {lo:.3f}. Not ruled out: that a value in "
        f"that interval{relative} differs from honest retraining, because the seed-to-seed spread of retraining "
        f"is unmeasured; a margin can back a finding, never a pass. To decide, {remedy}."
    )


def combine(probe_verdicts: dict[str, Verdict]) -> Verdict:
    """Overall verdict from the per-probe verdicts that count (see the module docstring)."""
    kinds = {name: v.kind for name, v in probe_verdicts.items()}
    residual = [n for n, k in kinds.items() if k == "residual_knowledge"]
    over = [n for n, k in kinds.items() if k == "over_unlearning"]
    unclear = [n for n, k in kinds.items() if k == "inconclusive"]
    if not kinds:
        return Verdict("inconclusive", "no probe counts toward the verdict under this policy")
    if residual:
        extra = f" Over-unlearning on {', '.join(over)}." if over else ""
        lead = probe_verdicts[residual[0]].reason
        return Verdict("residual_knowledge", f"{lead}{extra}", {"probes": kinds})
    if over:
        lead = probe_verdicts[over[0]].reason
        return Verdict("over_unlearning", lead, {"probes": kinds})
    if unclear:
        lead = probe_verdicts[unclear[0]].reason
        return Verdict("inconclusive", lead, {"probes": kinds})
    names = ", ".join(kinds)
    return Verdict(
        "pass", f"On every probe counted ({names}) the model is consistent with retraining.", {"probes": kinds}
    )
