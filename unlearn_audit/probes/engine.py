"""The fused probe engine: perturbed inputs in, integer counts out.

For every probe the engine counts, per forget sample, τ and model, how many perturbed draws each model
classifies correctly and how often it disagrees with the crafting model: a
:class:`~unlearn_audit.probes.counts.ProbeCounts` (its docstring defines the arrays).

Perturbed inputs are never stored: each batch is evaluated by every model and reduced to counts at once,
so memory is bounded by the batch size. The engines are selected by name in :mod:`.engines`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from ..device import resolve_device
from ..errors import ConfigError
from ..inference import check_logits
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress, ProgressTask
from .access import Crafting, query_only
from .base import ChunkContext, Probe, RowBatch
from .counts import ProbeCounts
from .frozen import build_scorers
from .keys import sample_keys, unit_seeds
from .preparation import (
    CraftingDecision,
    auto_batch_size,
    autocast_factory,
    decide_crafting,
    decide_precision,
    infer_num_classes,
    prepare_models,
    resolve_channels_last,
)
from .reference_side import ReferenceSide, draw_slots, label_dtype, offsets_within
from .registry import check_engine, probe_label

log = logging.getLogger(__name__)

PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
DEFAULT_TAUS = tuple(float(t) for t in np.linspace(0.0, 8.0 / 255.0, 11))


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the engine. ``batch_size=None`` picks rows per model call from a memory budget."""

    taus: tuple[float, ...] = DEFAULT_TAUS
    draws: int = 100
    seed: int = 0
    batch_size: int | None = None
    chunk_size: int = 128
    device: str = "auto"
    precision: PrecisionChoice = "auto"
    craft_precision: PrecisionChoice = "auto"
    """The precision of the gradient probes' crafting passes. ``auto``: the evaluation precision when
    ``precision`` is set explicitly or chosen bf16; with ``precision="auto"`` choosing fp32, bf16 where the
    crafting check passes (:func:`choose_crafting_precision`). The rows are always scored in ``precision``."""
    channels_last: bool | None = None
    compile: bool = False
    freeze_scoring: bool = True
    """Score rows with frozen inference graphs where safe and worth it (:mod:`.frozen`); crafting stays eager."""
    craft_on_references: bool = True
    fuse_batchnorm: bool = True
    memory_budget_mb: int = 512
    engine: Literal["fused", "art"] = "fused"

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ConfigError(f"--draws {self.draws}: need at least one draw per sample and τ")
        if not self.taus:
            raise ConfigError("--taus: give at least one τ")
        if any((not math.isfinite(t)) or t < 0 for t in self.taus):
            raise ConfigError(f"--taus: every τ must be a finite number >= 0, got {list(self.taus)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: must be positive")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size {self.chunk_size}: must be positive")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"--precision {self.precision!r}: use auto, fp32, bf16 or fp16")
        if self.craft_precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"--craft-precision {self.craft_precision!r}: use auto, fp32, bf16 or fp16")
        if self.engine not in ("fused", "art"):
            raise ConfigError(f"--engine {self.engine!r}: use fused or art")


class Engine:
    """Runs probes for one set of models and samples; reuse it across probes to prepare models once."""

    kind = "fused"

    def __init__(
        self,
        models: Sequence[AuditableModel],
        samples: Samples,
        config: EngineConfig,
        *,
        subjects: int = 1,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        if not models:
            raise ConfigError("the engine needs at least the audited model")
        if not 1 <= subjects <= len(models):
            raise ConfigError(f"subjects={subjects} but only {len(models)} model(s) given")
        self.subjects = subjects
        self.config = config
        self.samples = samples
        self.progress = progress
        self.device = resolve_device(config.device)
        self.channels_last = resolve_channels_last(config.channels_last, samples, models) and self.device.type != "mps"
        self.models = prepare_models(models, self.device, self.channels_last, config.compile, config.fuse_batchnorm)
        probe_x = samples.x[: min(8, len(samples))].to(self.device)
        self.num_classes = infer_num_classes(self.models, probe_x)
        if int(samples.y.max()) >= self.num_classes:
            raise ConfigError(
                f"{samples.source}: label {int(samples.y.max())} but the models output {self.num_classes} classes"
            )
        self.crafting = Crafting()
        self.precision_decision = decide_precision(
            config.precision,
            any(query_only(m) for m in models),
            self.models,
            samples,
            config.taus,
            self.device,
            config.seed,
        )
        self.precision = self.precision_decision.precision
        self.autocast = autocast_factory(self.device, self.precision)
        example = probe_x.contiguous(memory_format=torch.channels_last) if self.channels_last else probe_x
        rows = len(samples) * len(config.taus) * config.draws if config.freeze_scoring else 0
        self.scorers = build_scorers([m.module for m in self.models], [m.name for m in self.models], example,
                                     self.precision, rows)  # fmt: skip
        self._crafting_decision: CraftingDecision | None = None
        self.keys = sample_keys(samples.ids)

    @property
    def crafting_decision(self) -> CraftingDecision:
        """The gradient probes' crafting precision (``EngineConfig.craft_precision``), decided on first use (a
        Gaussian-only audit never pays for the check)."""
        if self._crafting_decision is None:
            cfg = self.config
            self._crafting_decision = decide_crafting(
                cfg.craft_precision, cfg.precision, self.precision_decision, self.models, self.samples, cfg.taus,
                self.device, cfg.seed, self.num_classes,
            )  # fmt: skip
            log.info("crafting precision %s: %s", self._crafting_decision.precision, self._crafting_decision.reason)
        return self._crafting_decision

    @property
    def crafting_precision(self) -> str:
        return self.crafting_decision.precision

    def precision_for(self, probe: Probe) -> str:
        """What a probe's counts depend on: the scoring precision, and for a gradient probe the crafting one."""
        if probe.crafts_in_autocast and self.crafting_precision != self.precision:
            return f"{self.precision} (crafted in {self.crafting_precision})"
        return self.precision

    def use_surrogate(self, surrogate: AuditableModel | None) -> None:
        """Craft adversarial rows on ``surrogate`` (transfer probes, see :class:`Crafting`); None: white-box."""
        if surrogate is None:
            self.crafting = Crafting()
            return
        if query_only(surrogate):
            raise ConfigError(f"surrogate {surrogate.meta.name}: a served model has no gradients to craft with")
        cfg = self.config
        (prepared,) = prepare_models([surrogate], self.device, self.channels_last, cfg.compile, cfg.fuse_batchnorm)
        infer_num_classes([self.models[0], prepared], self.samples.x[: min(8, len(self.samples))].to(self.device))
        self.crafting = Crafting(prepared)

    def run(
        self,
        probe: Probe,
        *,
        sample_range: tuple[int, int] | None = None,
        draws: int | None = None,
        reference_side: ReferenceSide | None = None,
        task: ProgressTask | None = None,
    ) -> ProbeCounts:
        """Counts for ``probe`` over all samples (or the half-open ``sample_range``, zeros elsewhere).

        ``draws`` overrides the configured number of draws for this probe (e.g. fewer for costly PGD).
        ``reference_side`` (from :meth:`reference_side`, for the same samples and settings) supplies the
        references' share: the references are then not run again, and the counts are the same integers.
        Progress advances per batch of rows, in forget samples (fractions of one while a sample's draws are under
        way): on ``task`` when given (the caller owns it and its total), else on a task of its own.
        """
        check_engine([probe], self.kind)
        cfg = self.config if draws is None else replace(self.config, draws=int(draws))
        taus = np.asarray(cfg.taus, dtype=np.float64)
        n, n_tau, n_models = len(self.samples), len(taus), len(self.models)
        access = self.crafting.access(probe)
        shared = access in ("transfer", "predictions-only")  # the same rows for every model
        crafted_on: tuple[int, ...] = tuple(range(self.subjects))
        if not shared and cfg.craft_on_references:
            crafted_on = tuple(range(n_models))
        refs = list(range(self.subjects, n_models))
        if not self.stores_reference_side(probe):
            reference_side = None  # transfer and query-based rows are not stored (their crafter is not a reference)
        if reference_side is not None:
            self._check_reference_side(reference_side, probe, cfg, refs)
        stored_blocks = reference_side is not None and access == "white-box" and reference_side.has_blocks
        stored_predictions = reference_side is not None and access == "predictions-only"
        # Random and transfer probes share their rows: one pass, every model, disagreement counted against every
        # subject. White-box rows crafted on model a only need a itself and the references (and, with a single
        # reference, the subjects too: the swap null compares the reference with the audited model).
        passes = [crafted_on] if shared else [(a,) for a in crafted_on]
        if stored_blocks:
            passes = [(a,) for a in crafted_on if a < self.subjects]
        evaluated = np.zeros((len(crafted_on), n_models), dtype=bool)
        for j, a in enumerate(crafted_on):
            if shared:
                evaluated[j] = True
            else:
                wanted = {a, *refs} | (set(range(self.subjects)) if len(refs) <= 1 else set())
                evaluated[j, sorted(wanted)] = True
        correct = np.zeros((len(crafted_on), n_models, n, n_tau), dtype=np.int64)
        disagree = np.zeros_like(correct)
        lo, hi = sample_range or (0, n)
        if stored_blocks:
            assert reference_side is not None and reference_side.correct is not None
            assert reference_side.disagree is not None
            for k, a in enumerate(refs):
                a_pos = crafted_on.index(a)
                correct[a_pos][np.ix_(refs, range(lo, hi))] = reference_side.correct[k][:, lo:hi]
                disagree[a_pos][np.ix_(refs, range(lo, hi))] = reference_side.disagree[k][:, lo:hi]
        label = probe_label(probe)
        own = task is None
        bar = self.progress.start(f"{label}", hi - lo) if task is None else task
        per_draw = 1.0 / (n_tau * cfg.draws * max(len(passes), 1))  # one draw's share of a forget sample
        try:
            for start, stop, ctx in self._chunks(probe, cfg, lo, hi):
                for anchors in passes:
                    models = [int(m) for m in np.flatnonzero(evaluated[crafted_on.index(anchors[0])])]
                    lookup = {}
                    if stored_predictions:
                        assert reference_side is not None and reference_side.predictions is not None
                        table = torch.from_numpy(reference_side.predictions[:, start:stop]).to(self.device).long()
                        lookup = {m: table[k] for k, m in enumerate(refs)}
                        models = [m for m in models if m not in lookup]
                    ctx.crafting_model = self.crafting.crafter(probe, self.models[anchors[0]]).module
                    c_chunk, d_chunk = self._count(
                        probe,
                        ctx,
                        anchors,
                        stop - start,
                        n_tau,
                        models,
                        lookup=lookup,
                        advance=lambda done: bar.advance(done * per_draw),
                    )
                    for j, a in enumerate(anchors):
                        a_pos = crafted_on.index(a)
                        correct[a_pos, :, start:stop] = c_chunk
                        disagree[a_pos, :, start:stop] = d_chunk[j]
        finally:
            if own:
                bar.close()
        return ProbeCounts(
            probe=label,
            probe_config={**probe.config(), "adversarial": probe.adversarial, **self.crafting.record(probe)},
            taus=taus,
            draws=cfg.draws,
            sample_ids=tuple(self.samples.ids),
            labels=self.samples.y.numpy().copy(),
            models=tuple(m.name for m in self.models),
            crafted_on=crafted_on,
            correct=correct,
            disagree=disagree,
            subjects=self.subjects,
            precision=self.precision_for(probe),
            evaluated=evaluated,
        )

    def reference_side(
        self, probe: Probe, *, draws: int | None = None, sample_range: tuple[int, int] | None = None
    ) -> ReferenceSide:
        """The references' share of ``probe``'s counts over all samples, or the half-open ``sample_range``
        (zeros elsewhere; a sequential audit's looks), see :mod:`.reference_side`.

        Random probes: every reference's prediction on every draw. Adversarial probes crafted on the
        references with K >= 2: the blocks of rows crafted on each reference. Otherwise nothing is stored and
        :meth:`run` computes the reference rows itself."""
        check_engine([probe], self.kind)
        cfg = self.config if draws is None else replace(self.config, draws=int(draws))
        taus = np.asarray(cfg.taus, dtype=np.float64)
        n, n_tau = len(self.samples), len(taus)
        refs = list(range(self.subjects, len(self.models)))
        out = ReferenceSide(probe_label(probe), probe.adversarial, taus, cfg.draws, tuple(self.samples.ids), len(refs))
        blocks = probe.adversarial and cfg.craft_on_references and len(refs) >= 2
        if not refs or not self.stores_reference_side(probe) or (probe.adversarial and not blocks):
            return out
        passes: list[tuple[int, ...]] = [(a,) for a in refs] if probe.adversarial else [()]
        lo, hi = sample_range or (0, n)
        task = self.progress.start(f"{probe_label(probe)} (references)", hi - lo)
        per_draw = 1.0 / (n_tau * cfg.draws * len(passes))

        def advance(done: float) -> None:
            task.advance(done * per_draw)

        if not probe.adversarial:
            predictions = torch.zeros(len(refs), n, n_tau, cfg.draws, dtype=torch.long, device=self.device)
        else:
            correct = np.zeros((len(refs), len(refs), n, n_tau), dtype=np.int64)
            disagree = np.zeros_like(correct)
        try:
            for start, stop, ctx in self._chunks(probe, cfg, lo, hi):
                for anchors in passes:
                    if not probe.adversarial:
                        record = {m: predictions[k, start:stop] for k, m in enumerate(refs)}
                        self._count(probe, ctx, anchors, stop - start, n_tau, refs, record=record, advance=advance)
                    else:
                        ctx.crafting_model = self.models[anchors[0]].module
                        c_chunk, d_chunk = self._count(probe, ctx, anchors, stop - start, n_tau, refs, advance=advance)
                        k = refs.index(anchors[0])
                        correct[k, :, start:stop] = c_chunk[refs]
                        disagree[k, :, start:stop] = d_chunk[0][refs]
        finally:
            task.close()
        if not probe.adversarial:
            labels = predictions.cpu().numpy().astype(label_dtype(self.num_classes))
            return replace(out, predictions=labels)
        return replace(out, correct=correct, disagree=disagree)

    def stores_reference_side(self, probe: Probe) -> bool:
        """Whether :meth:`reference_side` stores anything for ``probe``: random probes and white-box adversarial
        ones. Transfer rows (crafted on a surrogate) and query-based rows are computed in every run."""
        return self.crafting.access(probe) in ("white-box", "predictions-only")

    def _check_reference_side(self, side: ReferenceSide, probe: Probe, cfg: EngineConfig, refs: list[int]) -> None:
        same = (
            side.probe == probe_label(probe)
            and side.draws == cfg.draws
            and side.references == len(refs)
            and side.sample_ids == tuple(self.samples.ids)
            and np.array_equal(side.taus, np.asarray(cfg.taus, dtype=np.float64))
        )
        if not same or (not probe.adversarial and side.predictions is None):
            raise ConfigError(f"{probe_label(probe)}: the stored reference side was computed for other settings")

    def _chunks(self, probe: Probe, cfg: EngineConfig, lo: int, hi: int) -> Iterator[tuple[int, int, ChunkContext]]:
        """The samples ``lo:hi`` in chunks, each with its context (keyed seeds, batch size, precision)."""
        batch_size = cfg.batch_size or auto_batch_size(
            self.samples.input_shape, cfg.memory_budget_mb, probe.adversarial, self.device.type
        )
        taus_dev = torch.as_tensor(np.asarray(cfg.taus, dtype=np.float64), dtype=torch.float32, device=self.device)
        label = probe_label(probe)
        crafting = autocast_factory(self.device, self.crafting_precision) if probe.crafts_in_autocast else self.autocast
        for start in range(lo, hi, cfg.chunk_size):
            stop = min(hi, start + cfg.chunk_size)
            x = self.samples.x[start:stop].to(self.device)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.samples.y[start:stop].to(self.device)
            seeds = unit_seeds(cfg.seed, label, self.keys[start:stop], range(len(cfg.taus)))
            yield (
                start,
                stop,
                ChunkContext(
                    x=x,
                    y=y,
                    taus=taus_dev,
                    unit_seeds=seeds,
                    draws=cfg.draws,
                    num_classes=self.num_classes,
                    bounds=self.samples.bounds,
                    batch_size=batch_size,
                    device=self.device,
                    autocast=crafting,
                ),
            )

    def _count(
        self,
        probe: Probe,
        ctx: ChunkContext,
        anchors: Sequence[int],
        n: int,
        n_tau: int,
        models: Sequence[int],
        *,
        lookup: dict[int, torch.Tensor] | None = None,
        record: dict[int, torch.Tensor] | None = None,
        advance: Callable[[float], None] = lambda draws: None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Counts of one pass over a chunk's rows. ``models`` are run; ``lookup`` models' labels are read from
        stored ``[n, T, draws]`` tables and ``record`` tables are filled with the run models' labels (random
        probes: a row's draws are numbered in the order of the unit's random stream)."""
        lookup, record = lookup or {}, record or {}
        n_models = len(self.models)
        correct = torch.zeros(n_models, n * n_tau, dtype=torch.long, device=self.device)
        disagree = torch.zeros(len(anchors), n_models, n * n_tau, dtype=torch.long, device=self.device)
        total = torch.zeros(n * n_tau, dtype=torch.long, device=self.device)
        for batch in probe.rows(ctx):  # one model call per run model per batch
            preds = self._predict(batch, models)
            flat = batch.sample * n_tau + batch.tau
            if lookup or record:
                slots = draw_slots(flat, batch.weight, total, ctx.draws)
                for m, table in lookup.items():
                    preds[m] = table.view(-1)[flat * ctx.draws + slots]
                for m, table in record.items():
                    positions = torch.repeat_interleave(flat * ctx.draws + slots, batch.weight)
                    positions += offsets_within(batch.weight)
                    table.view(-1)[positions] = torch.repeat_interleave(preds[m], batch.weight)
            truth = ctx.y[batch.sample]
            total.index_add_(0, flat, batch.weight)
            for m in preds:
                correct[m].index_add_(0, flat, (preds[m] == truth).long() * batch.weight)
                for j, a in enumerate(anchors):
                    if a != m:
                        disagree[j, m].index_add_(0, flat, (preds[m] != preds[a]).long() * batch.weight)
            advance(float(batch.weight.sum()))  # progress per batch (draws done), not per chunk
        if not bool((total == ctx.draws).all()):  # every (sample, τ) must account for exactly `draws` draws
            raise RuntimeError(f"probe {probe.name}: internal draw accounting error")
        return (
            correct.view(n_models, n, n_tau).cpu().numpy(),
            disagree.view(len(anchors), n_models, n, n_tau).cpu().numpy(),
        )

    def _predict(self, batch: RowBatch, models: Sequence[int]) -> dict[int, torch.Tensor]:
        x = batch.x
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        preds = {}
        with torch.inference_mode(), self.autocast():
            for m in models:
                model = self.models[m]
                logits = self.scorers.get(m, model.module)(x).float()  # a frozen graph where one was built
                check_logits(logits, self.num_classes, model.name)
                preds[m] = logits.argmax(1)
        return preds
