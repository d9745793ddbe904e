"""``CountPlan``: how one audit turns models and a sample set into :class:`~unlearn_audit.probes.ProbeCounts`.

``Audit.run_many`` builds one plan per call: the engines (forget set, optional holdout), the crafting plan
(white-box or transfer), whether the reference side is reused (:mod:`unlearn_audit.reference_cache`), and the
sharding/resume settings (:mod:`unlearn_audit.distributed`). ``counts(probe, role)`` then gives one probe's
counts over the whole set, and ``counts(probe, role, sample_range=(lo, hi))`` over part of it (zeros
elsewhere), which is what a sequential audit (:mod:`unlearn_audit.sequential`) asks for, look by look. Every
sample's randomness is keyed by its id, so the counts of a sample do not depend on which range it was run in.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import distributed
from .device import configure_numerics
from .io.models import AuditableModel
from .io.samples import Samples
from .probes import Probe, ProbeCounts, make_engine, probe_label
from .probes.access import query_only
from .probes.crafting import CraftingPlan, plan_crafting
from .probes.reference_side import ReferenceSide
from .progress import NULL_PROGRESS, phase
from .reference_cache import model_identity, reference_key, reference_side_for

log = logging.getLogger(__name__)


@dataclass
class CountPlan:
    """Engines and settings shared by every probe of one ``run_many`` call (see the module docstring). ``audit`` is
    the :class:`~unlearn_audit.audit.Audit` that owns the plan (typed loosely: audit.py sits above this module)."""

    audit: Any
    subjects: list[AuditableModel]
    probes: list[Probe]
    forget: Samples
    """The forget set as the engine sees it (a sequential audit passes it in its seeded order)."""
    crafting: CraftingPlan
    reuse: bool
    dist: Any
    progress: Any
    engine_cfg: Any
    engine: Any = None
    pick: Any = None
    held: tuple[Any, Any] | None = None
    cache_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    partial_sides: dict[str, tuple[ReferenceSide | None, np.ndarray]] = field(default_factory=dict)
    """Reference sides computed for part of the set, by cache key, with the samples they cover (the audit's own
    dict, so a remediation trial's looks continue where an earlier trial's stopped)."""

    @classmethod
    def build(cls, audit: Any, subjects: list[AuditableModel], probes: list[Probe], forget: Samples) -> CountPlan:
        cfg = audit.config
        everything = [*subjects, *audit.references]
        dist = distributed.current()
        engine_cfg = cfg.engine_config()
        hint = distributed.local_device_hint() if dist is not None else None
        if hint and cfg.device == "auto":
            engine_cfg = dataclasses.replace(engine_cfg, device=hint)
        crafting = plan_crafting(
            subjects, audit.references, audit.surrogate, probes, audit.original or cfg.panel == "all"
        )
        # served models have no weights to identify them by: their audits keep no reference side (io/remote caches
        # their answers in the work directory instead)
        reuse = bool(audit.references) and (dist is None or dist.world_size == 1)
        reuse = reuse and not any(query_only(m) for m in everything)
        if reuse and audit._reference_identities is None:
            audit._reference_identities = [model_identity(r) for r in audit.references]
        progress = audit.progress if dist is None or dist.is_main else NULL_PROGRESS
        plan = cls(audit, subjects, probes, forget, crafting, reuse, dist, progress, engine_cfg)
        plan.partial_sides = audit._partial_sides
        plan.engine, plan.pick = plan._engine_for(forget, "forget")
        if audit.holdout is not None:
            # the holdout is scored and crafted as the forget set is: R_norm compares the two
            settings = {"precision": plan.engine.precision}
            if any(p.crafts_in_autocast for p in probes):
                settings["craft_precision"] = plan.engine.crafting_precision
            plan.held = plan._engine_for(audit.holdout, "holdout", dataclasses.replace(engine_cfg, **settings))
        return plan

    @property
    def everything(self) -> list[AuditableModel]:
        return [*self.subjects, *self.audit.references]

    def _engine_for(self, samples: Samples, role: str, engine_cfg: Any = None) -> tuple[Any, Any]:
        """The engine (and transfer runners) for one sample set; ``engine_cfg`` defaults to the plan's."""
        engine_cfg = engine_cfg or self.engine_cfg
        with phase(self.progress, f"preparing models and precision check ({role})", logger=log):
            made = make_engine(
                self.everything, samples, engine_cfg, subjects=len(self.subjects), progress=NULL_PROGRESS
            )
        log.info("precision %s (%s): %s", made.precision, role, made.precision_decision.reason)
        configure_numerics(made.device, made.precision)
        runners = self.crafting.runners(made, self.everything, make_engine, samples, engine_cfg, len(self.subjects))
        return made, runners

    def counts(self, probe: Probe, role: str, sample_range: tuple[int, int] | None = None) -> ProbeCounts:
        """One probe's counts on the forget set (``role="forget"``) or the holdout, over ``sample_range``."""
        audit, cfg = self.audit, self.audit.config
        engine, pick = (self.engine, self.pick) if role == "forget" else self.held  # type: ignore[misc]
        samples = self.forget if role == "forget" else audit.holdout
        label, draws = probe_label(probe), cfg.draws_for(probe_label(probe))
        runner, models_key = pick(probe)
        side = None
        if self.reuse and runner is engine:  # transfer rows (crafted on a surrogate) are not stored
            side = self._side(engine, probe, label, draws, role, sample_range)
        key = distributed.shard_key(role, models_key, samples, probe, cfg, engine, subjects=len(self.subjects))
        return distributed.run_probe(
            runner,
            probe,
            label,
            draws,
            key=key,
            reference_side=side,
            shard_size=audit.shard_size,
            work_dir=audit.work_dir,
            dist=self.dist,
            progress=self.progress,
            sample_range=sample_range,
        )

    def _side(
        self, engine: Any, probe: Probe, label: str, draws: int, role: str, sample_range: tuple[int, int] | None
    ) -> ReferenceSide:
        cache, identities = self.audit.reference_cache, self.audit._reference_identities or []
        n = len(engine.samples)
        if sample_range is None or sample_range == (0, n):
            side, self.cache_records[f"{role}/{label}"] = reference_side_for(
                cache, engine, probe, label, draws, identities
            )
            return side
        # part of the set (a sequential look): a complete stored side serves any range; otherwise the range is
        # computed, kept with the rest of this key's ranges, and stored once every sample has been seen
        key = reference_key(engine, probe, label, draws, identities)
        stored, source = cache.get(key)
        if stored is not None:
            self.cache_records[f"{role}/{label}"] = {"hit": True, "source": source, "key": key}
            return stored
        lo, hi = sample_range
        partial, done = self.partial_sides.get(key, (None, np.zeros(n, dtype=bool)))
        missing = np.flatnonzero(~done[lo:hi]) + lo
        if missing.size:
            part = engine.reference_side(probe, draws=draws, sample_range=(int(missing[0]), int(missing[-1]) + 1))
            partial = part if partial is None else partial.filled_from(part, int(missing[0]), int(missing[-1]) + 1)
            done = done.copy()
            done[missing[0] : missing[-1] + 1] = True
        assert partial is not None
        self.partial_sides[key] = (partial, done)
        earlier = self.cache_records.get(f"{role}/{label}", {"hit": True, "source": "memory (partial)"})
        source = "computed" if missing.size else earlier["source"]
        hit = bool(earlier["hit"]) and not missing.size
        self.cache_records[f"{role}/{label}"] = {"hit": hit, "source": source, "key": key}
        if done.all():
            cache.put(key, partial)
        return partial
