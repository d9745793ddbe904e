"""``AuditConfig``: every knob of an audit, validated once, before any work.

One name per knob: ``--batch-size`` ↔ ``AuditConfig.batch_size`` ↔ JSON ``"batch_size"``. The audit flow
(:mod:`unlearn_audit.audit`), the results (:mod:`unlearn_audit.results`) and remediation all read it from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError
from .policy import Policy
from .probes import DEFAULT_PROBES, DEFAULT_TAUS, EngineConfig, make_probes, probe_label
from .probes.registry import check_engine, default_draws


@dataclass(frozen=True)
class AuditConfig:
    """Every knob of an audit. One name per knob: ``--batch-size`` ↔ ``batch_size`` ↔ JSON ``"batch_size"``."""

    probes: tuple[str, ...] = DEFAULT_PROBES
    taus: tuple[float, ...] = DEFAULT_TAUS
    draws: int = 100
    probe_draws: tuple[tuple[str, int], ...] = ()
    """Per-probe overrides of ``draws``, e.g. ``(("pgd", 10),)``: PGD costs ``steps`` backward passes per draw."""
    seed: int = 0
    batch_size: int | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    engine: Literal["fused", "art"] = "fused"
    craft_on_references: bool = True
    bootstrap: int = 2000
    ci_method: Literal["bca", "percentile"] = "bca"
    level: float = 0.95
    policy: Policy = field(default_factory=Policy)
    panel: Literal["standard", "all", "none"] = "standard"
    """The standard unlearning panel beside r_τ (docs/metrics.md): ``standard`` (accuracies, MIAs, Avg Gap,
    re-learn time with an original), ``all`` (+ the Reminiscence probe) or ``none``."""

    def __post_init__(self) -> None:
        if self.panel not in ("standard", "all", "none"):
            raise ConfigError(f"--panel {self.panel!r}: use standard, all or none")
        names = [probe_label(p) for p in make_probes(list(self.probes))]  # validates names
        check_engine(make_probes(list(self.probes)), self.engine)  # e.g. autopgd needs --engine art
        for name, n in self.probe_draws:
            if name not in names:
                raise ConfigError(f"--draws {name}={n}: probe {name!r} is not among --probes ({', '.join(names)})")
            if int(n) < 1:
                raise ConfigError(f"--draws {name}={n}: need at least one draw")
        if self.bootstrap < 200:
            raise ConfigError(f"--bootstrap {self.bootstrap}: use at least 200 resamples")
        if not 0.5 < self.level < 1:
            raise ConfigError(f"level {self.level}: must be in (0.5, 1)")
        if self.ci_method not in ("bca", "percentile"):
            raise ConfigError(f"ci_method {self.ci_method!r}: use bca or percentile")
        self.engine_config()  # validates draws, τ grid, batch size, precision and engine

    def draws_for(self, probe: str) -> int:
        return int(dict(self.probe_draws).get(probe, default_draws(probe, self.draws)))

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            taus=tuple(self.taus),
            draws=self.draws,
            seed=self.seed,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
            craft_on_references=self.craft_on_references,
            engine=self.engine,
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["probes"] = list(self.probes)
        out["taus"] = list(self.taus)
        out["probe_draws"] = {name: int(n) for name, n in self.probe_draws}
        out["policy"] = self.policy.to_dict()
        return out
