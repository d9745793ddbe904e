"""``Audit``: the whole flow behind one object.

    audit = Audit(model, references=[ref1, ref2], forget="forget.csv", config=AuditConfig(seed=0))
    result = audit.run()
    result.verdict.kind, result.summary(), result.to_json()

Models and sets may be paths or objects already in memory (``nn.Module``, ``(x, y)`` tensors, ``Samples``).
``audit.run(other_model)`` audits another model against the same references and forget set;
``audit.run_many({name: model, ...})`` audits several models in one pass over shared draws, each named by its key.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import distributed
from .analysis import ProbeAnalysis, StatsSettings, analyse_probe
from .config import AuditConfig
from .counting import CountPlan
from .errors import ConfigError, InputError
from .evidence import flag_samples, null_flag_mean
from .io.models import AuditableModel, distinct_names, load_model, wrap_model
from .io.samples import Samples, load_samples
from .io.shapes import check_model_reads, fit_samples
from .panels import attach_panels
from .pilot import DrawsAuto, resolve_draws
from .policy import Verdict, combine
from .probes import ProbeCounts, make_probes, probe_label
from .progress import NULL_PROGRESS, Progress, phase
from .reference_cache import ReferenceCache
from .results import AuditResult, DataRecord, ModelRecord, library_versions
from .screening import ScreeningAnalysis, analyse_screening
from .sequential import Sequential
from .stats.ratio import class_matching_weights

if TYPE_CHECKING:
    from .remediation import RemediationResult

__all__ = ["Audit", "AuditConfig", "AuditResult", "ModelLike", "SamplesLike"]

log = logging.getLogger(__name__)

ModelLike = AuditableModel | torch.nn.Module | str | Path
SamplesLike = Samples | str | Path | tuple[Any, ...]


class Audit:
    """Wraps what the user already has: the model under audit, retrained references and the forget set."""

    draws_auto: DrawsAuto | None = None  # --draws auto: the pilot's choice, made on the first run (pilot.py)

    def __init__(
        self,
        model: ModelLike | None = None,
        references: Sequence[ModelLike] = (),
        forget: SamplesLike | None = None,
        *,
        holdout: SamplesLike | None = None,
        config: AuditConfig | None = None,
        progress: Progress = NULL_PROGRESS,
        model_options: Mapping[str, Any] | None = None,
        sample_options: Mapping[str, Any] | None = None,
        command: str | None = None,
        work_dir: str | Path | None = None,
        shard_size: int = 256,
        retain: SamplesLike | None = None,
        test: SamplesLike | None = None,
        original: ModelLike | None = None,
        surrogate: ModelLike | None = None,
        cache_dir: str | Path | bool | ReferenceCache | None = None,
    ) -> None:
        self.config = config or AuditConfig()
        # the reference side (references' predictions and leave-one-out rows), computed once: in memory, and on
        # disk in cache_dir (None: the user's cache folder; False: memory only). See reference_cache.py.
        self.reference_cache = ReferenceCache.from_setting(cache_dir)
        self._reference_identities: list[dict[str, Any]] | None = None
        self._partial_sides: dict[str, Any] = {}  # a sequential audit's reference sides for part of the set
        self.progress = progress
        self.work_dir = Path(work_dir) if work_dir is not None else None
        if shard_size < 1:
            raise ConfigError(f"--shard-size {shard_size}: must be positive")
        self.shard_size = int(shard_size)
        self._model_options = dict(model_options or {})
        self._sample_options = dict(sample_options or {})
        self.command = command or " ".join(sys.argv)
        self.references = [self._model(r, f"reference-{i}") for i, r in enumerate(references)]
        self.model = self._model(model, "model") if model is not None else None
        if forget is None:
            raise ConfigError("an audit needs the forget set (--forget)")
        self.forget = self._samples(forget, "forget")
        for other in [self.model, *self.references]:  # every model must read the forget set as fitted
            if other is not None:
                check_model_reads(other, self.forget)
        self.holdout = self._samples(holdout, "holdout") if holdout is not None else None
        # the standard unlearning panel's inputs (metrics/panel.py); None when not given
        self.retain = self._samples(retain, "retain") if retain is not None else None
        self.test = self._samples(test, "test") if test is not None else None
        self.original = self._model(original, "original") if original is not None else None
        self.surrogate = self._model(surrogate, "surrogate") if surrogate is not None else None
        # a model converted from ONNX is re-checked against onnxruntime on the forget set (io/formats/onnx_models.py)
        self.references = [self._conversion_checked(r) for r in self.references]
        self.model = self._conversion_checked(self.model) if self.model is not None else None
        if not self.references and self.holdout is None:
            raise ConfigError(
                "nothing to compare against: pass --reference (a model retrained without the forget set; the strong "
                "test) and/or --holdout (unseen samples of the same classes; a weaker screening test)"
            )
        if self.holdout is not None:
            try:
                self._holdout_class_weights = class_matching_weights(self.forget.y.numpy(), self.holdout.y.numpy())
            except ValueError as exc:
                raise InputError(f"{self.holdout.source}: {exc}; add holdout samples of those classes") from exc
        self.references = distinct_names(self.references, {self.model.meta.name} if self.model is not None else set())

    def _model(self, model: ModelLike, name: str) -> AuditableModel:
        if isinstance(model, str | Path):
            opts = {k: v for k, v in self._model_options.items() if v is not None}
            return load_model(model, device="cpu", **opts)
        return wrap_model(model, name=name)

    def _conversion_checked(self, model: AuditableModel) -> AuditableModel:
        from .io.formats.onnx_models import recheck_on_samples

        on = f"the forget set ({len(self.forget)} samples, content sha256 {self.forget.content_sha256[:12]})"
        return recheck_on_samples(model, self.forget.x, on)

    def _samples(self, samples: SamplesLike, role: str) -> Samples:
        template = self.model or (self.references[0] if self.references else None)
        opts = dict(self._sample_options)
        if template is not None and not isinstance(samples, Samples):
            opts.setdefault("num_classes", template.meta.num_classes)
            opts.setdefault("input_shape", template.meta.input_shape)
        if isinstance(samples, str | Path):
            loaded = load_samples(samples, **opts)
        else:
            loaded = load_samples(samples, num_classes=opts.get("num_classes"))  # type: ignore[arg-type]
        return fit_samples(loaded, template) if template is not None else loaded  # greyscale <-> RGB, shape check

    # ------------------------------------------------------------------------------------------------ running
    def run(self, model: ModelLike | None = None, *, stop_at_residual: bool = False) -> AuditResult:
        """Audit ``model`` (default: the constructor's). ``stop_at_residual`` (remediation trials): stop after the
        first counted probe that finds residual knowledge, the overall verdict whatever the rest show (the skipped
        probes are listed in ``provenance.stopped_early``)."""
        target = self._model(model, "model") if model is not None else self.model
        if target is None:
            raise ConfigError("no model to audit: pass it to Audit(...) or to run(model)")
        with phase(self.progress, f"audit of {target.meta.name}", logger=log):
            return self.run_many({target.meta.name: target}, stop_at_residual=stop_at_residual)[target.meta.name]

    def remediate(
        self,
        model: ModelLike | None = None,
        *,
        retain: SamplesLike | None = None,
        test: SamplesLike | None = None,
        method: str = "rurk",
        budget: float = 2.0,
        search: bool = False,
        **hparams: Any,
    ) -> RemediationResult:
        """Remediate ``model`` (default: the constructor's), re-run this same audit on it, and judge the cost.

        Returns a :class:`~unlearn_audit.remediation.RemediationResult`: success only if the new verdict is
        ``pass`` and retain accuracy fell by at most ``budget`` points. See docs/remediation.md."""
        from .remediation import remediate as run_remediation

        target = self._model(model, "model") if model is not None else self.model
        if target is None:
            raise ConfigError("no model to remediate: pass it to Audit(...) or to remediate(model)")
        retain = retain if retain is not None else getattr(self, "retain", None)
        if retain is None:
            raise ConfigError("remediation needs the retain set: pass retain= (CLI: --retain)")
        test = test if test is not None else getattr(self, "test", None)
        return run_remediation(
            self,
            target,
            self._samples(retain, "retain"),
            self._samples(test, "test") if test is not None else None,
            method=method,
            budget=budget,
            search=search,
            progress=self.progress,
            **hparams,
        )

    def run_many(self, models: Mapping[str, ModelLike], *, stop_at_residual: bool = False) -> dict[str, AuditResult]:
        """Audit several models against the same references, sharing draws and the reference side; results keyed
        and named by the keys."""
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        subjects = []
        for name, m in models.items():
            loaded = self._conversion_checked(self._model(m, name))
            if loaded.meta.name != name:
                loaded = loaded.renamed(name)
            subjects.append(loaded)
        self.references = distinct_names(self.references, {s.meta.name for s in subjects})
        resolve_draws(self, subjects)  # --draws auto: the pilot's draws, set on self.config (pilot.py)
        cfg = self.config
        probes = make_probes(list(cfg.probes))
        labels = [probe_label(p) for p in probes]
        sequential: Sequential | None = None
        # a remediation trial (stop_at_residual) is a sequential audit too: one still clearly residual stops early
        trial = stop_at_residual and bool(self.references) and len(subjects) == 1 and distributed.current() is None
        if cfg.stop_early or trial:
            sequential = Sequential.plan(self, subjects, probes)
            forget_counts, holdout_counts, plan = sequential.run()
            stopped = None
        else:
            plan = CountPlan.build(self, subjects, probes, self.forget)
            forget_counts, holdout_counts, stopped = self._all_counts(plan, stop_at_residual)
        engine, dist = plan.engine, plan.dist
        finished = datetime.now(timezone.utc)
        precision = {
            "used": engine.precision,
            "requested": cfg.precision,
            "reason": engine.precision_decision.reason,
            "bf16_flip_rates": engine.precision_decision.flip_rates,
            "check_rows": engine.precision_decision.rows,
        }
        crafting = engine.crafting_decision if any(p.crafts_in_autocast for p in probes) else None
        if crafting is not None and (crafting.precision != engine.precision or crafting.check):
            # where crafting differs from scoring, or the crafting check ran (and kept fp32: the user sees why)
            precision["crafting"] = {
                "used": crafting.precision,
                "requested": cfg.craft_precision,
                "reason": crafting.reason,
                "check": crafting.check,
                "check_rows": crafting.rows,
            }
        provenance = {
            "command": self.command,
            "api_call": f"unlearn_audit.Audit(...).run_many([{', '.join(repr(s.meta.name) for s in subjects)}])",
            "versions": library_versions(),
            "device": str(engine.device),
            "platform": platform.platform(),
            "distributed": {"world_size": dist.world_size, "backend": dist.backend} if dist else None,
            "time": {
                "started": started.isoformat(timespec="seconds"),
                "finished": finished.isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - clock, 2),
            },
            "reference_cache": self.reference_cache.record(plan.cache_records) if plan.reuse else None,
        }
        if stopped is not None and stopped["skipped"]:
            provenance["stopped_early"] = stopped
        results = {}
        for index, subject in enumerate(subjects):
            args = (index, subject, forget_counts, holdout_counts, provenance, precision, labels)
            if sequential is None:
                results[subject.meta.name] = self._analyse(*args)
                continue
            result = self._analyse(*args, forget=sequential.seen, level=sequential.level)
            if sequential.finished is not None:  # --per-sample all: the flags from every sample
                every = (index, subject, sequential.finished, holdout_counts, provenance, precision, labels)
                full = self._analyse(*every, forget=sequential.ordered, level=sequential.level)
                result.flagged_samples, result.sample_evidence = full.flagged_samples, full.sample_evidence
            result.sequential = sequential.record(subject.meta.name)
            result.notes.append(sequential.note(subject.meta.name))
            results[subject.meta.name] = result
        if cfg.panel != "none" and (dist is None or dist.is_main):
            with phase(plan.progress, "standard unlearning panel", logger=log):
                attach_panels(self, subjects, results, plan.engine_cfg.device, plan.progress)
        plan.crafting.annotate(results, subjects, self.references, forget_counts)
        return results

    def _all_counts(
        self, plan: CountPlan, stop_at_residual: bool
    ) -> tuple[dict[str, ProbeCounts], dict[str, ProbeCounts], dict[str, Any] | None]:
        """Every probe's counts on the whole forget set (and holdout); a remediation trial (``stop_at_residual``)
        stops after the first counted probe that finds residual knowledge."""
        forget_counts: dict[str, ProbeCounts] = {}
        holdout_counts: dict[str, ProbeCounts] = {}
        labels = [probe_label(p) for p in plan.probes]
        for probe in plan.probes:
            label = probe_label(probe)
            forget_counts[label] = plan.counts(probe, "forget")
            if plan.held is not None:
                holdout_counts[label] = plan.counts(probe, "holdout")
            if stop_at_residual and len(plan.subjects) == 1 and self._residual_on(label, forget_counts, holdout_counts):
                return forget_counts, holdout_counts, {"after": label, "skipped": labels[labels.index(label) + 1 :]}
        return forget_counts, holdout_counts, None

    def _level(self, labels: Sequence[str]) -> float:
        """The per-probe confidence level: Bonferroni over the probes the policy counts among those planned."""
        policy = self.config.policy
        return policy.verdict_level(len([name for name in labels if policy.counts_probe(name)]))

    @staticmethod
    def _subset(index: int, counts: ProbeCounts) -> list[int]:
        """Model indices of subject ``index`` and the references within ``counts`` (a transfer probe's counts
        leave a surrogate reference out)."""
        return [index, *range(counts.subjects, len(counts.models))]

    def _probe_analysis(
        self, name: str, counts: ProbeCounts, holdout: ProbeCounts | None, subset: list[int], level: float
    ) -> tuple[ProbeAnalysis, np.ndarray, np.ndarray]:
        cfg, h = self.config, holdout.restricted(subset) if holdout is not None else None
        settings = StatsSettings(cfg.bootstrap, cfg.ci_method, cfg.level, cfg.seed)
        weights, description = self._holdout_class_weights if h is not None else None, make_probes([name])[0].describe()
        return analyse_probe(counts.restricted(subset), 0, cfg.policy, settings, level, description, h, weights)

    def _residual_on(self, label: str, forget: dict[str, ProbeCounts], holdout: dict[str, ProbeCounts]) -> bool:
        """Probe ``label`` counts and finds residual knowledge: ``combine`` then says so whatever the rest say."""
        if not self.references or not self.config.policy.counts_probe(label):
            return False
        level = self._level([probe_label(p) for p in make_probes(list(self.config.probes))])
        found, _, _ = self._probe_analysis(
            label, forget[label], holdout.get(label), self._subset(0, forget[label]), level
        )
        return found.counts_toward_verdict and found.verdict.kind == "residual_knowledge"

    def _analyse(
        self,
        index: int,
        subject: AuditableModel,
        forget_counts: dict[str, ProbeCounts],
        holdout_counts: dict[str, ProbeCounts],
        provenance: dict[str, Any],
        precision: dict[str, Any],
        planned: Sequence[str],
        *,
        forget: Samples | None = None,
        level: float | None = None,
    ) -> AuditResult:
        """One subject's result. A sequential audit passes the samples its verdict rests on (``forget``) and its
        stopping look's level; otherwise the level is Bonferroni over the probes planned."""
        cfg = self.config
        policy = cfg.policy
        forget = forget if forget is not None else self.forget
        settings = StatsSettings(cfg.bootstrap, cfg.ci_method, cfg.level, cfg.seed)
        level = level if level is not None else self._level(planned)  # stopped early: the planned probes' level
        notes: list[str] = []
        probes: dict[str, ProbeAnalysis] = {}
        screening: dict[str, ScreeningAnalysis] = {}
        per_sample: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        with phase(self.progress, "bootstrap and analysis", len(forget_counts), logger=log) as task:
            for name, counts in forget_counts.items():
                subset = self._subset(index, counts)
                if self.references:
                    analysis, p_values, uv = self._probe_analysis(name, counts, holdout_counts.get(name), subset, level)
                    probes[name] = analysis
                    if analysis.counts_toward_verdict:
                        per_sample[name] = (p_values, uv)
                else:
                    screening[name] = analyse_screening(
                        counts.restricted(subset),
                        holdout_counts[name].restricted(subset),
                        self.forget.y.numpy(),
                        self.holdout.y.numpy(),  # type: ignore[union-attr]
                        policy,
                        settings,
                        level,
                    )
                task.advance(1)
        evidence = flag_samples(forget.ids, forget.y.numpy(), per_sample, policy.fdr)
        if self.references and len(self.references) == 1:
            notes.append(
                "The per-sample calibrated test uses a documented default dispersion of retraining "
                f"(ρ = {policy.single_reference_dispersion}); with two or more references it is measured."
            )
        if self.references:
            verdict = combine({n: p.verdict for n, p in probes.items() if p.counts_toward_verdict})
            if len(self.references) == 1:
                notes.append(
                    "Only one retrained reference: the seed-to-seed spread of retraining could not be measured, so a "
                    f"documented margin (±{policy.single_reference_margin:.0%}) stands in for it. A margin can back a "
                    "finding, never a pass: a model inside it reads inconclusive. Add a second reference to decide."
                )
            counts_any = next(iter(forget_counts.values()))
            if (
                counts_any.adversarial is False
                and any(c.adversarial for c in forget_counts.values())
                and not cfg.craft_on_references
            ):
                notes.append(
                    "Adversarial probes were not crafted on the references; their null band is a fixed margin, "
                    "which can back a finding on them but never a pass."
                )
        else:
            kinds = {n: s.verdict for n, s in screening.items() if policy.counts_probe(n)}
            residual = [n for n, v in kinds.items() if v.kind == "residual_knowledge"]
            if residual:
                verdict = Verdict(
                    "residual_knowledge", kinds[residual[0]].reason, {"probes": {n: v.kind for n, v in kinds.items()}}
                )
            else:
                first = next(iter(kinds.values())) if kinds else None
                verdict = Verdict(
                    "inconclusive",
                    first.reason if first else "no probe counted",
                    {"probes": {n: v.kind for n, v in kinds.items()}},
                )
            notes.append(
                "Reference-free screening: the denominator comes from held-out samples the model never trained on, "
                "class-matched to the forget set. It has weaker guarantees than a retrained reference: it assumes the "
                "forget samples are distributed like the holdout, it cannot separate forgetting from generalisation, "
                "and it can only flag residual knowledge, never pass a model. Supply a retrained reference to decide."
            )
        if "stopped_early" in provenance:
            skipped = ", ".join(provenance["stopped_early"]["skipped"])
            notes.append(
                f"Stopped early (a remediation trial): residual knowledge decided the verdict; not run: {skipped}."
            )
        if len(self.forget) < policy.min_samples:
            notes.append(f"Only {len(self.forget)} forget samples: verdicts need at least {policy.min_samples}.")
        return AuditResult(
            verdict=verdict,
            model=ModelRecord.of(subject),
            references=[ModelRecord.of(r) for r in self.references],
            forget=DataRecord.of("forget", self.forget),
            holdout=DataRecord.of("holdout", self.holdout) if self.holdout is not None else None,
            config=cfg,
            probes=probes,
            flagged_samples=evidence.flagged,
            sample_evidence=evidence.summary()
            | {
                "null_flagged_mean": null_flag_mean(
                    {n: p.null_p_exact for n, p in probes.items() if p.counts_toward_verdict}, policy.fdr
                ),
                "samples_tested": len(forget),
            },
            screening=screening,
            provenance=provenance,
            precision=precision,
            notes=notes,
            counts={n: c.restricted(self._subset(index, c)) for n, c in forget_counts.items()},
            draws_auto=self.draws_auto.to_dict() if self.draws_auto is not None else None,
        )
