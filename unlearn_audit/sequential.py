"""Sequential audits (``check --stop-early``, ``AuditConfig(stop_early=True)``): look at the forget set in
stages and stop as soon as every counted probe is decided.

* The forget set is processed in a random order fixed by the seed, in planned looks (``AuditConfig.looks``,
  default ¼, ½, all; looks with fewer than ``policy.min_samples`` samples are dropped). Every sample's
  randomness is keyed by its id, so a sample's counts are the integers the full audit would produce.
* At look k every counted probe is analysed exactly as the full audit analyses it (pooled R, or D for a whole
  class, against the leave-one-out null band), on the samples seen so far, at the confidence level of the
  look's *repeated confidence interval* (:mod:`unlearn_audit.stats.sequential`): alpha spending over the looks
  (Lan–DeMets; Kim–DeMets ``α·t^1.5`` by default, O'Brien–Fleming or Pocock type on request) of each probe's
  Bonferroni share ``α / P``. A probe is decided
  when its interval lies wholly above, below or inside the band.
* The audit stops at the first look where every counted probe is decided, or where one counted probe is
  decided ``residual_knowledge``, which decides the overall verdict whatever the others show
  (``policy.combine``); otherwise it runs to the last look, whose verdict stands. Because repeated intervals cover the truth at every look
  simultaneously, the reported interval keeps its level whichever look the audit stops at, and the chance of
  a false finding stays ≤ α.
* Only findings stop an audit early: before the last look a probe is decided only when its interval lies wholly
  above or below the band. *Inside* counts at the last look alone. The band is made of the references' own
  intervals on the samples seen, so on fewer samples it is wider, and "inside" gets easier, not harder, the
  earlier the look: on the digits random-sample panel an early "inside" read pass at 35 samples where the full
  audit of 140 reads inconclusive (docs/performance.md). A pass therefore always rests on every sample (docs/methodology.md, "Sequential audits"; simulations in
  tests/unit/test_sequential_simulation.py).

The JSON's ``sequential`` object records the design, every look taken (per probe: the statistic, its interval,
the band and the decision), ``stopped_at_look``, ``samples_used``, and ``evaluations_used`` against
``evaluations_full`` (model evaluations × rows, the cost the full audit would have paid on the same plan).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import distributed
from .analysis import _num
from .counting import CountPlan
from .errors import ConfigError
from .io.models import AuditableModel
from .io.samples import Samples
from .policy import classify
from .probes import Probe, ProbeCounts, probe_label
from .progress import phase
from .stats.sequential import Design, design, look_sizes

DECISIONS = {"residual_knowledge": "above", "over_unlearning": "below", "pass": "inside", "inconclusive": None}


def may_stop(decisions: list[str | None], residual: bool) -> bool:
    """Whether one model's audit may stop at a look: every counted probe decided, or one counted probe decided
    residual knowledge, which decides the overall verdict whatever the others show (``policy.combine``)."""
    return all(d is not None for d in decisions) or residual


def seeded_order(seed: int, n: int) -> np.ndarray:
    """The order a sequential audit reads ``n`` forget samples in: a permutation drawn from the audit seed."""
    key = (0x5E9, zlib.crc32(b"sequential-order"))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key)).permutation(n)


def evaluations(counts: ProbeCounts, samples: int) -> int:
    """Model evaluations × rows for ``samples`` samples of one probe: every (block, model) pair that ran, on
    every (sample, τ, draw) row."""
    return int(counts.evaluated_mask.sum()) * samples * len(counts.taus) * int(counts.draws)


@dataclass
class Sequential:
    """One sequential run of ``Audit.run_many`` (see the module docstring)."""

    audit: Any
    subjects: list[AuditableModel]
    probes: list[Probe]
    order: np.ndarray
    ordered: Samples
    sizes: list[int]
    design: Design
    looks: list[dict[str, Any]] = field(default_factory=list)
    stopped_at: int = 0
    used: int = 0
    full: int = 0
    finished: dict[str, ProbeCounts] | None = None
    """With ``per_sample="all"``: counts over every sample (the per-sample evidence), the verdict's stay the
    stopping look's."""

    @classmethod
    def plan(cls, audit: Any, subjects: list[AuditableModel], probes: list[Probe]) -> Sequential:
        cfg, policy = audit.config, audit.config.policy
        if not audit.references:
            raise ConfigError(
                "--stop-early decides each probe against the retrained references' null band: pass --reference "
                "(reference-free screening runs on the whole set)"
            )
        dist = distributed.current()
        if dist is not None and dist.world_size > 1:
            raise ConfigError("--stop-early runs in one process; drop it under torchrun, or run without torchrun")
        n = len(audit.forget)
        order = seeded_order(cfg.seed, n)
        ordered = audit.forget.subset(order, source=audit.forget.source)
        sizes = look_sizes(n, cfg.looks, policy.min_samples)
        counted = [p for p in probes if policy.counts_probe(probe_label(p))]
        alpha = policy.alpha / max(1, len(counted))
        plan = design([s / n for s in sizes], alpha, cfg.spending) if n else design([1.0], alpha, cfg.spending)
        return cls(audit, subjects, probes, order, ordered, sizes or [n], plan)

    @property
    def level(self) -> float:
        """The confidence level of the intervals at the look the audit stopped at."""
        return self.design.levels[self.stopped_at]

    @property
    def seen(self) -> Samples:
        """The forget samples the verdict rests on, in the order they were seen."""
        return self.ordered.subset(np.arange(self.sizes[self.stopped_at]), source=self.audit.forget.source)

    def run(self) -> tuple[dict[str, ProbeCounts], dict[str, ProbeCounts], CountPlan]:
        """Counts over the samples seen when the audit stopped (and the holdout's, always whole)."""
        audit = self.audit
        plan = CountPlan.build(audit, self.subjects, self.probes, self.ordered)
        holdout: dict[str, ProbeCounts] = {}
        if plan.held is not None:
            holdout = {probe_label(p): plan.counts(p, "holdout") for p in self.probes}
        total: dict[str, ProbeCounts] = {}
        start = 0
        for k, size in enumerate(self.sizes):
            with phase(plan.progress, f"look {k + 1} of {len(self.sizes)}: samples {start + 1}-{size}"):
                for probe in self.probes:
                    label = probe_label(probe)
                    part = plan.counts(probe, "forget", (start, size))
                    total[label] = total[label].merge(part) if label in total else part
                    self.used += evaluations(part, size - start)
            start = size
            self.stopped_at = k
            if self._look(k, {label: c.take(slice(0, size)) for label, c in total.items()}, holdout):
                break
        self.full = sum(evaluations(c, len(self.ordered)) for c in total.values())
        seen = {label: c.take(slice(0, self.sizes[self.stopped_at])) for label, c in total.items()}
        if audit.config.per_sample == "all" and start < len(self.ordered):
            with phase(plan.progress, f"per-sample evidence for samples {start + 1}-{len(self.ordered)}"):
                self.finished = {
                    probe_label(p): total[probe_label(p)].merge(plan.counts(p, "forget", (start, len(self.ordered))))
                    for p in self.probes
                }
        return seen, holdout, plan

    def _look(self, k: int, counts: dict[str, ProbeCounts], holdout: dict[str, ProbeCounts]) -> bool:
        """Analyse look ``k``; True when the audit may stop there."""
        audit, policy = self.audit, self.audit.config.policy
        level = self.design.levels[k]
        record: dict[str, Any] = {"look": k + 1, "samples": self.sizes[k], "level": level, "subjects": {}}
        stop = True
        for index, subject in enumerate(self.subjects):
            probes: dict[str, Any] = {}
            residual = False
            for name, c in counts.items():
                if not policy.counts_probe(name):
                    continue
                subset = audit._subset(index, c)
                found, _, _ = audit._probe_analysis(name, c, holdout.get(name), subset, level)
                label, estimate = found.decisive
                decision = DECISIONS[classify(estimate.lo, estimate.hi, found.band)]
                if decision == "inside" and k + 1 < len(self.sizes):
                    decision = None  # a pass needs every sample (see the module docstring)
                residual = residual or found.verdict.kind == "residual_knowledge"
                probes[name] = {
                    "statistic": label,
                    "value": _num(estimate.value),
                    "ci": [_num(estimate.lo), _num(estimate.hi)],
                    "band": [_num(found.band.lo), _num(found.band.hi)],
                    "decided": decision,
                    "verdict": found.verdict.kind,
                }
            record["subjects"][subject.meta.name] = probes
            decisions = [p["decided"] for p in probes.values()]
            stop = stop and may_stop(decisions, residual)
        self.looks.append(record)
        return stop

    def note(self, subject: str) -> str:
        """The report's note on what the verdict rests on."""
        n, used, k = len(self.ordered), self.sizes[self.stopped_at], self.stopped_at + 1
        share = self.used / self.full if self.full else 1.0
        lead = (
            f"Sequential audit ({self.design.function} alpha spending over {len(self.sizes)} looks): "
            f"stopped at look {k} of {len(self.sizes)} after {used} of {n} forget samples in seeded order, "
            f"{share:.0%} of the full audit's model evaluations; intervals are repeated confidence intervals at "
            f"{self.level:.4%}."
        )
        probes = self.looks[-1]["subjects"].get(subject, {}) if self.looks else {}
        open_probes = [name for name, p in probes.items() if p["decided"] is None]
        if used < n and open_probes:
            found = [name for name, p in probes.items() if p["decided"] == "above"]
            lead += (
                f" It stopped because {', '.join(found)} found residual knowledge, which decides the overall verdict; "
                f"{', '.join(open_probes)} were not decided on these samples and read as they stood."
            )
        if used == n:
            return lead
        if self.finished is not None:
            return (
                lead
                + " Per-sample evidence covers every sample (--per-sample all); the verdict rests on the samples seen."
            )
        return lead + f" Per-sample evidence covers only the {used} samples seen; --per-sample all finishes the rest."

    def record(self, subject: str) -> dict[str, Any]:
        """The JSON's ``sequential`` object for one audited model."""
        n = len(self.ordered)
        used = self.sizes[self.stopped_at]
        return {
            "design": self.design.to_dict(),
            "order": "a permutation of the forget set drawn from the audit seed",
            "planned_looks": [{"look": k + 1, "samples": s} for k, s in enumerate(self.sizes)],
            "looks": [
                {"look": r["look"], "samples": r["samples"], "level": r["level"], "probes": r["subjects"][subject]}
                for r in self.looks
            ],
            "stopped_at_look": self.stopped_at + 1,
            "stopped_early": used < n,
            "samples_used": used,
            "samples_total": n,
            "evaluations_used": self.used,
            "evaluations_full": self.full,
            "per_sample": "all" if self.finished is not None or used == n else "seen",
        }
