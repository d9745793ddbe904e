"""The fused probe engine: perturbed inputs in, integer counts out.

For every probe the engine produces, per forget sample and τ,

* ``correct[a, m, i, t]``: how many of the ``draws`` perturbed copies of sample i at τ_t, crafted on model
  ``a``, model ``m`` classifies correctly;
* ``disagree[a, m, i, t]``: on how many of those draws model ``m`` and the crafting model ``a`` disagree.

Models ``0..S-1`` are the audited models ("subjects", usually one), models ``S..S+K-1`` the references.
``a`` runs over the *anchors* ``crafted_on``: for adversarial probes, the models the inputs are crafted on
(every subject and, for the null band, every reference); for random probes the draws are shared by all
models and the anchors are the subjects (``disagree`` is counted against each of them, ``correct`` is the
same in every block).

Perturbed inputs are never stored: each batch is evaluated by every model and reduced to counts at once,
so memory is bounded by the batch size. Counts are the single currency between probes and statistics:
small, exact, mergeable across shards (sum) and resumable.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..device import resolve_device
from ..errors import ConfigError, ModelOutputError
from ..inference import check_logits
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress
from .base import ChunkContext, Probe, RowBatch
from .keys import sample_keys, unit_seeds
from .random import GaussianProbe
from .registry import check_engine, probe_label

log = logging.getLogger(__name__)

PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
MAX_FLIP_RATE = 0.001
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
    channels_last: bool | None = None
    compile: bool = False
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
        if self.engine not in ("fused", "art"):
            raise ConfigError(f"--engine {self.engine!r}: use fused or art")


@dataclass
class ProbeCounts:
    """Sufficient statistics of one probe over a τ grid (see the module docstring)."""

    probe: str
    probe_config: dict[str, Any]
    taus: np.ndarray
    draws: int
    sample_ids: tuple[str, ...]
    labels: np.ndarray
    models: tuple[str, ...]
    crafted_on: tuple[int, ...]
    correct: np.ndarray  # int64 [A, M, N, T]
    disagree: np.ndarray  # int64 [A, M, N, T]
    subjects: int = 1
    precision: str = "fp32"
    meta: dict[str, Any] = field(default_factory=dict)
    evaluated: np.ndarray | None = None  # bool [A, M]: which models saw each block's rows (None: all)

    def __post_init__(self) -> None:
        if self.evaluated is None:
            self.evaluated = np.ones(self.correct.shape[:2], dtype=bool)

    @property
    def adversarial(self) -> bool:
        return bool(self.probe_config.get("adversarial", False))

    @property
    def evaluated_mask(self) -> np.ndarray:
        return self.evaluated if self.evaluated is not None else np.ones(self.correct.shape[:2], dtype=bool)

    @property
    def references(self) -> tuple[int, ...]:
        return tuple(range(self.subjects, len(self.models)))

    def block(self, model_index: int) -> int:
        """Index along ``a`` of the rows crafted on (adversarial) or anchored at (random) ``model_index``.

        For random probes every block holds the same ``correct`` counts, so a reference uses block 0.
        """
        if model_index in self.crafted_on:
            return self.crafted_on.index(model_index)
        if not self.adversarial:
            return 0
        raise KeyError(f"no rows were crafted on model {self.models[model_index]!r}")

    def merge(self, other: ProbeCounts) -> ProbeCounts:
        """Sum of two partial runs over disjoint samples (shards) with identical settings."""
        same = (self.probe, self.draws, self.models, self.crafted_on, self.sample_ids)
        if same != (other.probe, other.draws, other.models, other.crafted_on, other.sample_ids) or not np.array_equal(
            self.taus, other.taus
        ):
            raise ConfigError("cannot merge counts from runs with different probes, τ grids, draws, models or samples")
        return replace(
            self,
            correct=self.correct + other.correct,
            disagree=self.disagree + other.disagree,
            evaluated=np.logical_and(self.evaluated_mask, other.evaluated_mask),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"correct": self.correct, "disagree": self.disagree, "taus": self.taus, "labels": self.labels}


# ------------------------------------------------------------------------------------------------ preparation


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d | nn.Conv3d) for m in model.modules())


@dataclass
class PreparedModel:
    name: str
    module: nn.Module
    num_classes: int | None


def fold_batchnorm(module: AuditableModel) -> bool:
    """Fold eval-mode BatchNorm into the preceding conv/linear layer (torch.fx); False if it cannot trace.

    Mathematically identical in eval mode (outputs agree to ~1e-5), and it halves the cost of the backward
    passes adversarial probes need: BatchNorm's backward is as expensive as the convolution's here.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        module.net = fuse(module.net, inplace=False)
    except Exception as exc:  # noqa: BLE001 - any tracing failure just means "no folding"
        log.debug("BatchNorm folding skipped for %s: %s", module.meta.name, exc)
        return False
    return True


def pool_before_relu(module: AuditableModel) -> int:
    """Rewrite ``maxpool(relu(h))`` as ``relu(maxpool(h))`` in a traced (BatchNorm-folded) network.

    Exact: ReLU is monotone, so the max of the rectified values is the rectified max, and both forms route the
    gradient to the same (first) arg-max. The ReLU then runs on a quarter of the elements (2x2 pooling).
    Returns the number of swaps (the ablation in docs/performance.md measures the gain).
    """
    graph_module = module.net
    if not isinstance(graph_module, torch.fx.GraphModule):
        return 0
    modules = dict(graph_module.named_modules())

    def is_relu(node: torch.fx.Node) -> bool:
        if node.op == "call_module":
            target = modules.get(str(node.target))
            return isinstance(target, nn.ReLU)
        return node.op == "call_function" and node.target in (torch.relu, F.relu) and not node.kwargs

    def is_maxpool(node: torch.fx.Node) -> bool:
        return node.op == "call_module" and isinstance(modules.get(str(node.target)), nn.MaxPool2d | nn.MaxPool1d)

    swaps = 0
    for relu in list(graph_module.graph.nodes):
        if not is_relu(relu) or len(relu.users) != 1 or len(relu.args) != 1:
            continue
        pool = next(iter(relu.users))
        if not is_maxpool(pool) or modules[str(pool.target)].return_indices:
            continue
        # h -> relu -> pool -> users   becomes   h -> pool -> relu -> users
        source = relu.args[0]
        pool.replace_all_uses_with(relu)
        pool.args = (source, *pool.args[1:])
        relu.args = (pool,)
        relu.prepend(pool)
        swaps += 1
    if swaps:
        graph_module.graph.lint()
        graph_module.recompile()
    return swaps


def prepare_models(
    models: Sequence[AuditableModel],
    device: torch.device,
    channels_last: bool,
    compile_models: bool,
    fuse_batchnorm: bool = True,
) -> list[PreparedModel]:
    """Private eval-mode copies on ``device``: parameters frozen, BatchNorm folded, optionally channels_last
    and compiled. The caller's models are never modified."""
    prepared = []
    for model in models:
        module = copy.deepcopy(model).eval()
        fold_own_graph = getattr(module.net, "fold_batchnorm", None)  # an exported program (io/formats/exported.py)
        if fuse_batchnorm and callable(fold_own_graph):
            fold_own_graph()
        elif fuse_batchnorm and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
            if fold_batchnorm(module):
                pool_before_relu(module)
        module = module.to(device)
        for p in module.parameters():
            p.requires_grad_(False)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        if compile_models:
            module = torch.compile(module)  # type: ignore[assignment]
        prepared.append(PreparedModel(model.meta.name, module, model.meta.num_classes))
    return prepared


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - old torch
            return False
    return False


def autocast_factory(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class PrecisionDecision:
    precision: str
    flip_rates: dict[str, float]
    rows: int
    reason: str


def choose_precision(
    prepared: Sequence[PreparedModel], samples: Samples, taus: Sequence[float], device: torch.device, seed: int
) -> PrecisionDecision:
    """``auto``: bf16 only where it is supported and flips ≤ 0.1 % of predictions against fp32 on these models.

    The check uses the forget samples themselves, clean and with Gaussian noise at the largest τ.
    """
    if not bf16_supported(device):
        return PrecisionDecision("fp32", {}, 0, f"bf16 is not supported on {device.type} here")
    n = min(len(samples), 512)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(samples), generator=gen)[:n]
    x = samples.x[idx]
    tau = max(taus)
    noisy = [GaussianProbe().perturb(None, x, samples.y[idx], tau, gen, samples.bounds) for _ in range(3)]
    rows = torch.cat([x, *noisy]).to(device)
    if rows.dim() == 4:
        rows = rows.contiguous(memory_format=torch.channels_last)
    rates = {}
    with torch.inference_mode():
        for model in prepared:
            mismatches = 0
            for start in range(0, rows.shape[0], 512):
                block = rows[start : start + 512]
                ref = model.module(block).float().argmax(1)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                    low = model.module(block).float().argmax(1)
                mismatches += int((ref != low).sum())
            rates[model.name] = mismatches / rows.shape[0]
    worst = max(rates.values()) if rates else 0.0
    if worst <= MAX_FLIP_RATE:
        return PrecisionDecision("bf16", rates, rows.shape[0], f"bf16 flips {worst:.3%} of predictions (≤ 0.1 %)")
    return PrecisionDecision("fp32", rates, rows.shape[0], f"bf16 would flip {worst:.3%} of predictions (> 0.1 %)")


CPU_MAX_ROWS = 256


def auto_batch_size(input_shape: tuple[int, ...], budget_mb: int, adversarial: bool, device_type: str = "cpu") -> int:
    """Rows per model call: inputs plus a rough allowance for activations, within the memory budget.

    On CPU at most ``CPU_MAX_ROWS``: larger batches push the activations out of cache, and the memory-bound
    ReLU, pooling and backward kernels slow down (the ablation in docs/performance.md, from
    benchmarks/probes.py). Accelerators keep the budget-sized batches (up to 4,096 rows).
    """
    per_row = 4 * math.prod(input_shape) * (48 if adversarial else 16)
    rows = int(budget_mb * 1024**2 // max(per_row, 1))
    cap = CPU_MAX_ROWS if device_type == "cpu" else 4096
    return int(min(cap, max(32, rows)))


# --------------------------------------------------------------------------------------------------- running


def _resolve_channels_last(setting: bool | None, samples: Samples, models: Sequence[AuditableModel]) -> bool:
    if setting is not None:
        return setting
    return samples.x.dim() == 4 and any(_has_conv(m) for m in models)


def _infer_num_classes(prepared: Sequence[PreparedModel], x: torch.Tensor) -> int:
    counts = set()
    with torch.inference_mode():
        for model in prepared:
            out = model.module(x).float()
            check_logits(out, model.num_classes, model.name)
            counts.add(int(out.shape[1]))
    if len(counts) != 1:
        raise ModelOutputError(
            f"the models disagree on the number of classes ({sorted(counts)}); audited model and references must "
            "share one label set"
        )
    return counts.pop()


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
        self.channels_last = _resolve_channels_last(config.channels_last, samples, models) and self.device.type != "mps"
        self.models = prepare_models(models, self.device, self.channels_last, config.compile, config.fuse_batchnorm)
        probe_x = samples.x[: min(8, len(samples))].to(self.device)
        self.num_classes = _infer_num_classes(self.models, probe_x)
        if int(samples.y.max()) >= self.num_classes:
            raise ConfigError(
                f"{samples.source}: label {int(samples.y.max())} but the models output {self.num_classes} classes"
            )
        if config.precision == "auto":
            self.precision_decision = choose_precision(self.models, samples, config.taus, self.device, config.seed)
        else:
            if config.precision == "bf16" and not bf16_supported(self.device):
                log.warning("bf16 requested but not supported natively on %s; it will be emulated (slow)", self.device)
            self.precision_decision = PrecisionDecision(config.precision, {}, 0, "set explicitly")
        self.precision = self.precision_decision.precision
        self.autocast = autocast_factory(self.device, self.precision)
        self.keys = sample_keys(samples.ids)

    def run(
        self, probe: Probe, *, sample_range: tuple[int, int] | None = None, draws: int | None = None
    ) -> ProbeCounts:
        """Counts for ``probe`` over all samples (or the half-open ``sample_range``, zeros elsewhere).

        ``draws`` overrides the configured number of draws for this probe (e.g. fewer for costly PGD).
        """
        check_engine([probe], self.kind)
        cfg = self.config if draws is None else replace(self.config, draws=int(draws))
        taus = np.asarray(cfg.taus, dtype=np.float64)
        n, n_tau, n_models = len(self.samples), len(taus), len(self.models)
        crafted_on: tuple[int, ...] = tuple(range(self.subjects))
        if probe.adversarial and cfg.craft_on_references:
            crafted_on = tuple(range(n_models))
        # Random probes share their draws: one pass, every model, disagreement counted against every subject.
        # Adversarial rows crafted on model a only need a itself and the references (and, with a single
        # reference, the subjects too: the swap null compares the reference with the audited model).
        passes = [crafted_on] if not probe.adversarial else [(a,) for a in crafted_on]
        refs = list(range(self.subjects, n_models))
        evaluated = np.zeros((len(crafted_on), n_models), dtype=bool)
        for j, a in enumerate(crafted_on):
            if not probe.adversarial:
                evaluated[j] = True
            else:
                wanted = {a, *refs} | (set(range(self.subjects)) if len(refs) <= 1 else set())
                evaluated[j, sorted(wanted)] = True
        correct = np.zeros((len(crafted_on), n_models, n, n_tau), dtype=np.int64)
        disagree = np.zeros_like(correct)
        lo, hi = sample_range or (0, n)
        batch_size = cfg.batch_size or auto_batch_size(
            self.samples.input_shape, cfg.memory_budget_mb, probe.adversarial, self.device.type
        )
        label = probe_label(probe)
        task = self.progress.start(f"{label}", (hi - lo) * len(passes))
        taus_dev = torch.as_tensor(taus, dtype=torch.float32, device=self.device)
        try:
            for start in range(lo, hi, cfg.chunk_size):
                stop = min(hi, start + cfg.chunk_size)
                x = self.samples.x[start:stop].to(self.device)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = self.samples.y[start:stop].to(self.device)
                seeds = unit_seeds(cfg.seed, label, self.keys[start:stop], range(n_tau))
                for anchors in passes:
                    ctx = ChunkContext(
                        x=x,
                        y=y,
                        taus=taus_dev,
                        unit_seeds=seeds,
                        draws=cfg.draws,
                        num_classes=self.num_classes,
                        bounds=self.samples.bounds,
                        batch_size=batch_size,
                        device=self.device,
                        crafting_model=self.models[anchors[0]].module,
                        autocast=self.autocast,
                    )
                    c_chunk, d_chunk = self._count(
                        probe,
                        ctx,
                        anchors,
                        stop - start,
                        n_tau,
                        [int(m) for m in np.flatnonzero(evaluated[crafted_on.index(anchors[0])])],
                    )
                    for j, a in enumerate(anchors):
                        a_pos = crafted_on.index(a)
                        correct[a_pos, :, start:stop] = c_chunk
                        disagree[a_pos, :, start:stop] = d_chunk[j]
                    task.advance(stop - start)
        finally:
            task.close()
        return ProbeCounts(
            probe=label,
            probe_config={**probe.config(), "adversarial": probe.adversarial},
            taus=taus,
            draws=cfg.draws,
            sample_ids=tuple(self.samples.ids),
            labels=self.samples.y.numpy().copy(),
            models=tuple(m.name for m in self.models),
            crafted_on=crafted_on,
            correct=correct,
            disagree=disagree,
            subjects=self.subjects,
            precision=self.precision,
            evaluated=evaluated,
        )

    def _count(
        self, probe: Probe, ctx: ChunkContext, anchors: Sequence[int], n: int, n_tau: int, models: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        n_models = len(self.models)
        correct = torch.zeros(n_models, n * n_tau, dtype=torch.long, device=self.device)
        disagree = torch.zeros(len(anchors), n_models, n * n_tau, dtype=torch.long, device=self.device)
        total = torch.zeros(n * n_tau, dtype=torch.long, device=self.device)
        for batch in probe.rows(ctx):
            preds = self._predict(batch, models)
            flat = batch.sample * n_tau + batch.tau
            truth = ctx.y[batch.sample]
            total.index_add_(0, flat, batch.weight)
            for m in models:
                correct[m].index_add_(0, flat, (preds[m] == truth).long() * batch.weight)
                for j, a in enumerate(anchors):
                    if a != m:
                        disagree[j, m].index_add_(0, flat, (preds[m] != preds[a]).long() * batch.weight)
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
                logits = model.module(x).float()
                check_logits(logits, self.num_classes, model.name)
                preds[m] = logits.argmax(1)
        return preds


def make_engine(
    models: Sequence[AuditableModel],
    samples: Samples,
    config: EngineConfig,
    *,
    subjects: int = 1,
    progress: Progress = NULL_PROGRESS,
) -> Engine:
    """The engine ``config.engine`` names: ``fused`` (ours) or ``art`` (ART's attacks, a slower second opinion)."""
    if config.engine == "art":
        from .art_engine import ArtEngine

        return ArtEngine(models, samples, config, subjects=subjects, progress=progress)
    return Engine(models, samples, config, subjects=subjects, progress=progress)


def run_probes(
    probes: Sequence[Probe],
    models: Sequence[AuditableModel],
    samples: Samples,
    config: EngineConfig,
    *,
    subjects: int = 1,
    progress: Progress = NULL_PROGRESS,
) -> dict[str, ProbeCounts]:
    """Convenience: one engine, several probes."""
    engine = make_engine(models, samples, config, subjects=subjects, progress=progress)
    return {probe_label(p): engine.run(p) for p in probes}
