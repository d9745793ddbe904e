"""``AuditConfig``: every knob of an audit, validated once, before any work.

One name per knob: ``--batch-size`` ↔ ``AuditConfig.batch_size`` ↔ JSON ``"batch_size"``. The audit flow
(:mod:`unlearn_audit.audit`), the results (:mod:`unlearn_audit.results`) and remediation all read it from here.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .commitment import SecretSeed
from .errors import ConfigError
from .policy import Policy
from .probes import DEFAULT_PROBES, DEFAULT_TAUS, EngineConfig, make_probes, probe_label
from .probes.registry import check_engine, default_draws
from .stats.sequential import DEFAULT_LOOKS, DEFAULT_SPENDING, SPENDING_FUNCTIONS


@dataclass(frozen=True)
class AuditConfig:
    """Every knob of an audit. One name per knob: ``--batch-size`` ↔ ``batch_size`` ↔ JSON ``"batch_size"``."""

    probes: tuple[str, ...] = DEFAULT_PROBES
    taus: tuple[float, ...] = DEFAULT_TAUS
    draws: int = 100
    probe_draws: tuple[tuple[str, int], ...] = ()
    """Per-probe overrides of ``draws``, e.g. ``(("pgd", 10),)``: PGD costs ``steps`` backward passes per draw."""
    draws_auto: bool = False
    """``--draws auto``: a pilot on a seeded subset of the forget set picks each probe's draws, the fewest that keep
    the Monte-Carlo share of the verdict statistic's variance at most ``mc_share`` (:mod:`unlearn_audit.pilot`).
    ``draws`` is then unused; a ``probe_draws`` override still wins for its probe."""
    mc_share: float = 0.10
    """With ``draws_auto``: the largest share of the verdict statistic's variance that Monte-Carlo noise may make."""
    resolved_draws: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)
    """Set by ``--draws auto``'s pilot (:func:`unlearn_audit.pilot.resolve_draws`) on the ``Audit``'s config: the
    draws it chose per probe, which :meth:`draws_for` then returns. Not part of the JSON: the report's ``config``
    stays what was asked, and its ``draws_auto`` object says what was chosen."""
    seed: int = 0
    """One seed for every random choice. For a seed the audited party cannot predict, use
    ``AuditConfig(...).with_secret_seed(SecretSeed.draw())``: the JSON then carries ``seed_commitment``, never the seed."""
    seed_commitment: str | None = None
    """Set (by :meth:`with_secret_seed`) when ``seed`` is an audit-time secret: its SHA-256 commitment
    (:mod:`unlearn_audit.commitment`). ``seed`` then never appears in the JSON, the reports or ``repr``."""
    jitter_taus: bool = False
    """Set by :meth:`with_jittered_taus`: ``taus`` was drawn from the seed, one τ uniformly in each of equal strata
    of the requested range (τ = 0 kept), so an owner cannot predict the grid of an audit with a secret seed."""
    batch_size: int | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    craft_precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """The gradient probes' crafting precision (``EngineConfig.craft_precision``): with ``precision="auto"``
    choosing fp32, rows are crafted with bf16 gradients where the crafting check keeps the attack's strength,
    and always scored in ``precision``."""
    frozen_scoring: bool = True
    """Score rows with frozen inference graphs (CPU, fp32, fx-traceable networks, large enough audits; the
    engine's :mod:`~unlearn_audit.probes.frozen`); False scores every row with the eager module."""
    engine: Literal["fused", "art"] = "fused"
    craft_on_references: bool = True
    bootstrap: int = 2000
    ci_method: Literal["bca", "percentile"] = "bca"
    level: float = 0.95
    policy: Policy = field(default_factory=Policy)
    panel: Literal["standard", "all", "none"] = "standard"
    """The standard unlearning panel beside r_τ (docs/metrics.md): ``standard`` (accuracies, MIAs, Avg Gap,
    re-learn time with an original), ``all`` (+ the Reminiscence probe) or ``none``."""
    stop_early: bool = False
    """Sequential audit (unlearn_audit/sequential.py): look at the forget set in stages and stop once every
    counted probe is decided, under alpha spending so the false-finding rate holds under optional stopping."""
    looks: tuple[float, ...] = DEFAULT_LOOKS
    """A sequential audit's planned looks, as shares of the forget set (increasing, the last 1)."""
    spending: Literal["kim-demets", "obrien-fleming", "pocock"] = DEFAULT_SPENDING
    """The alpha-spending function over the looks (Lan–DeMets type; docs/methodology.md)."""
    per_sample: Literal["seen", "all"] = "seen"
    """A sequential audit's per-sample evidence: the samples seen when it stopped, or ``all`` (finishes the rest
    for the flags only; the verdict stays the stopping look's)."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed {self.seed!r}: use a non-negative integer, or secret (with --seed-file)")
        if self.panel not in ("standard", "all", "none"):
            raise ConfigError(f"--panel {self.panel!r}: use standard, all or none")
        self._check_sequential()
        names = [probe_label(p) for p in make_probes(list(self.probes))]  # validates names
        check_engine(make_probes(list(self.probes)), self.engine)  # e.g. autopgd needs --engine art
        for name, n in self.probe_draws:
            if name not in names:
                raise ConfigError(f"--draws {name}={n}: probe {name!r} is not among --probes ({', '.join(names)})")
            if int(n) < 1:
                raise ConfigError(f"--draws {name}={n}: need at least one draw")
        if not isinstance(self.frozen_scoring, bool):
            raise ConfigError(f"frozen_scoring {self.frozen_scoring!r}: use true or false")
        if not isinstance(self.draws_auto, bool):
            raise ConfigError(f"draws_auto {self.draws_auto!r}: use true or false")
        if isinstance(self.mc_share, bool) or not isinstance(self.mc_share, int | float) or not 0 < self.mc_share < 1:
            raise ConfigError(f"--mc-share {self.mc_share!r}: give a fraction in (0, 1), e.g. 0.1")
        if self.bootstrap < 200:
            raise ConfigError(f"--bootstrap {self.bootstrap}: use at least 200 resamples")
        if not 0.5 < self.level < 1:
            raise ConfigError(f"level {self.level}: must be in (0.5, 1)")
        if self.ci_method not in ("bca", "percentile"):
            raise ConfigError(f"ci_method {self.ci_method!r}: use bca or percentile")
        self.engine_config()  # validates draws, τ grid, batch size, precision and engine
        counted = [t for t in self.taus if self.policy.tau_min - 1e-12 <= t <= self.policy.tau_max + 1e-12]
        if self.taus and not counted:
            hi = "∞" if self.policy.tau_max == float("inf") else f"{self.policy.tau_max:g}"
            raise ConfigError(
                f"--tau-min/--tau-max [{self.policy.tau_min:g}, {hi}] contain no τ of the grid "
                f"({', '.join(f'{t:.4g}' for t in self.taus)}): widen the range or change --taus"
            )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={'<secret>' if f.name == 'seed' and self.secret_seed else repr(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
        )
        return f"AuditConfig({fields})"

    @property
    def secret_seed(self) -> bool:
        return self.seed_commitment is not None

    def with_secret_seed(self, secret: SecretSeed) -> AuditConfig:
        """This config with ``secret`` as its seed, committed to in the report (the seed itself never is)."""
        return dataclasses.replace(self, seed=secret.value, seed_commitment=secret.commitment)

    def _check_sequential(self) -> None:
        looks = [float(t) for t in self.looks]
        if (
            not looks
            or any(not 0 < t <= 1 for t in looks)
            or any(b <= a for a, b in zip(looks, looks[1:], strict=False))
        ):
            raise ConfigError(
                f"--looks {','.join(map(str, self.looks))}: give increasing shares in (0, 1], e.g. 0.125,0.25,0.5,1"
            )
        if abs(looks[-1] - 1.0) > 1e-9:
            raise ConfigError(
                f"--looks {','.join(map(str, self.looks))}: the last look must see every sample (end with 1)"
            )
        if self.spending not in SPENDING_FUNCTIONS:
            raise ConfigError(f"--spending {self.spending!r}: use {' or '.join(SPENDING_FUNCTIONS)}")
        if self.per_sample not in ("seen", "all"):
            raise ConfigError(f"--per-sample {self.per_sample!r}: use seen or all")

    def with_jittered_taus(self) -> AuditConfig:
        """This config with its τ grid drawn from the seed (docs/methodology.md, "Jittered τ grid").

        The range is [min τ, max τ] of the grid, clipped to the policy's τ range. With n values (and τ = 0 in the
        grid, which is kept: the unperturbed check), the range is cut into n (or n − 1) equal strata and one τ is
        drawn uniformly in each. Deterministic for a seed; unpredictable only when the seed is secret."""
        if self.jitter_taus:
            raise ConfigError("--jitter-taus: the τ grid was already drawn from the seed")
        lo = max(min(self.taus), self.policy.tau_min)
        hi = min(max(self.taus), self.policy.tau_max)
        if not hi > lo:
            raise ConfigError(
                f"--jitter-taus: the τ grid and the policy's τ range leave no interval to draw from ([{lo}, {hi}]); "
                "give a grid such as --taus 0:8/255:11"
            )
        keep_zero = lo == 0.0 and 0.0 in self.taus and len(self.taus) > 1
        strata = len(self.taus) - 1 if keep_zero else len(self.taus)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x7A05,)))
        drawn = lo + (np.arange(strata) + rng.random(strata)) * (hi - lo) / strata
        taus = ((0.0,) if keep_zero else ()) + tuple(float(t) for t in drawn)
        return dataclasses.replace(self, taus=taus, jitter_taus=True)

    def library_seed(self, purpose: str) -> int:
        """A seed below 2**31 for libraries that take no wider one (torch generators, scikit-learn): the seed itself
        when it is public and fits, so public seeds behave as before; otherwise a hash of (seed, purpose), which
        reveals nothing of a secret seed."""
        if not self.secret_seed and self.seed < 2**31:
            return self.seed
        state = np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(purpose.encode()),)).generate_state(1)
        return int(state[0]) & 0x7FFFFFFF

    def draws_for(self, probe: str) -> int:
        """Draws of ``probe``: its ``--draws probe=N``, else what ``--draws auto`` chose, else the default."""
        explicit, chosen = dict(self.probe_draws), dict(self.resolved_draws)
        return int(explicit.get(probe, chosen.get(probe, default_draws(probe, self.draws))))

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            taus=tuple(self.taus),
            draws=self.draws,
            seed=self.seed,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
            craft_precision=self.craft_precision,
            freeze_scoring=self.frozen_scoring,
            craft_on_references=self.craft_on_references,
            engine=self.engine,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], seed: int | SecretSeed | None = None) -> AuditConfig:
        """The inverse of :meth:`to_dict` (a report's ``config``). A secret seed is not in ``data``: pass it."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config: unknown field(s) {', '.join(unknown)}; written by a newer unlearn-audit?")
        values["probes"] = tuple(values.get("probes", DEFAULT_PROBES))
        values["taus"] = tuple(float(t) for t in values.get("taus", DEFAULT_TAUS))
        values["probe_draws"] = tuple((str(k), int(n)) for k, n in (values.get("probe_draws") or {}).items())
        values["looks"] = tuple(float(t) for t in values.get("looks", DEFAULT_LOOKS))
        values["policy"] = Policy.from_dict(values["policy"]) if "policy" in values else Policy()
        values.pop("seed_commitment", None)
        if isinstance(seed, SecretSeed):
            values["seed"] = 0
            return cls(**values).with_secret_seed(seed)
        if seed is not None:
            values["seed"] = int(seed)
        if values.get("seed") is None:
            raise ConfigError("config: the seed was secret; pass the seed file that opens its commitment")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["probes"] = list(self.probes)
        out["taus"] = list(self.taus)
        out["probe_draws"] = {name: int(n) for name, n in self.probe_draws}
        out["looks"] = list(self.looks)
        # absent unless asked for: a full audit's config (and its binding digest) stays as before
        if not self.stop_early:
            del out["stop_early"], out["looks"], out["spending"], out["per_sample"]
        out["policy"] = self.policy.to_dict()
        del out["resolved_draws"]  # the report's draws_auto object carries them
        if self.craft_precision == "auto":  # absent unless set: a report's config (and binding digest) stays as before
            del out["craft_precision"]
        if self.frozen_scoring:  # likewise
            del out["frozen_scoring"]
        if not self.draws_auto:  # absent unless asked for: a report's config (and its binding digest) stays as before
            del out["draws_auto"], out["mc_share"]
        if self.secret_seed:
            out["seed"] = None  # committed to (seed_commitment), never written
        else:
            del out["seed_commitment"]
        return out
