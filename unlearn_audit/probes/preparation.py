"""Models ready for the engine: private eval-mode copies with BatchNorm folded and pooling moved before ReLU
(both exact), the numeric precision they are scored in (``--precision auto`` checks bf16 on the samples) and
crafted in (``--craft-precision auto`` checks that bf16 gradients keep the attack's strength), and the rows per
model call."""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..errors import ModelOutputError
from ..inference import check_logits
from ..io.models import AuditableModel
from ..io.samples import Samples
from .adversarial import input_gradient
from .base import clip, random_targets
from .keys import sample_keys
from .random import GaussianProbe

log = logging.getLogger(__name__)

MAX_FLIP_RATE = 0.001
QUERY_ONLY = "a served model answers in its own precision"


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


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d | nn.Conv3d) for m in model.modules())


def resolve_channels_last(setting: bool | None, samples: Samples, models: Sequence[AuditableModel]) -> bool:
    """``EngineConfig.channels_last`` as set, else on for 4-D inputs into convolutional networks."""
    if setting is not None:
        return setting
    return samples.x.dim() == 4 and any(_has_conv(m) for m in models)


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


def rewrite_traceable(module: AuditableModel) -> int:
    """``pool_before_relu`` for a network without BatchNorm: trace it (torch.fx) and keep the traced copy only
    when a rewrite applied. Untraceable networks (data-dependent control flow) run as they are."""
    if not any(isinstance(m, nn.MaxPool2d | nn.MaxPool1d) for m in module.net.modules()):
        return 0
    original = module.net
    try:
        module.net = torch.fx.symbolic_trace(original)
    except Exception as exc:  # noqa: BLE001 - any tracing failure just means "no rewrite"
        log.info("%s: not traceable by torch.fx (%s); no graph rewrite", module.meta.name, type(exc).__name__)
        return 0
    swaps = pool_before_relu(module)
    if not swaps:
        module.net = original
    log.info("%s: %d max-pool(s) moved before their ReLU", module.meta.name, swaps)
    return swaps


def preparation_signature(module: nn.Module) -> str:
    """What preparation did to a prepared model's network (its traced code when rewritten), for cache keys."""
    net = getattr(module, "net", module)
    code = getattr(net, "code", None)
    if isinstance(code, str):
        return "fx:" + hashlib.sha256(code.encode()).hexdigest()[:16]
    return f"module:{type(net).__qualname__}"


def exported_program(net: nn.Module) -> bool:
    """A ``.pt2`` program (io/formats/exported.py): it folds its own BatchNorm and runs as exported."""
    return callable(getattr(net, "fold_batchnorm", None))


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
        if fuse_batchnorm and exported_program(module.net):
            cast(Any, module.net).fold_batchnorm()
        elif fuse_batchnorm and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
            if fold_batchnorm(module):
                pool_before_relu(module)
        elif fuse_batchnorm:
            rewrite_traceable(module)
        module = module.to(device)
        for p in module.parameters():
            p.requires_grad_(False)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        if compile_models:
            module = torch.compile(module)  # type: ignore[assignment]
        prepared.append(PreparedModel(model.meta.name, module, model.meta.num_classes))
    return prepared


def infer_num_classes(prepared: Sequence[PreparedModel], x: torch.Tensor) -> int:
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


def check_rows(samples: Samples, seed: int, n: int) -> torch.Tensor:
    """``n`` rows for a precision check, chosen by the seed and the samples' *ids*, in an order that does not
    depend on the order of the forget set (a sequential audit reads it permuted and must decide alike)."""
    keys = sample_keys(samples.ids)
    mixed = keys ^ np.uint64(int(seed) & ((1 << 64) - 1))
    mixed = (mixed * np.uint64(0x9E3779B97F4A7C15)) ^ (mixed >> np.uint64(29))  # wraps mod 2^64
    return torch.as_tensor(np.argsort(mixed, kind="stable")[:n].astype(np.int64))


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
    gen = torch.Generator().manual_seed(seed & ((1 << 63) - 1))  # a 128-bit secret seed fits after masking
    idx = check_rows(samples, seed, n)
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


MAX_CRAFT_DISAGREEMENT = 0.02
"""bf16 crafting: at most this share of check rows may be predicted differently after a bf16-crafted step than
after the fp32-crafted one (both evaluated in fp32)."""
MAX_CRAFT_STRENGTH_LOSS = 0.01
"""bf16 crafting: the targeted step's success rate may fall by at most this much (absolute) against fp32."""
CRAFT_CHECK_ROWS = 256


@dataclass(frozen=True)
class CraftingDecision:
    precision: str
    check: dict[str, dict[str, float]]
    """Per model: ``success_fp32``, ``success_bf16`` (share of rows the targeted step moved to its target, x'
    evaluated in fp32) and ``disagreement`` (share of rows predicted differently after the two steps)."""
    rows: int
    reason: str


def choose_crafting_precision(
    prepared: Sequence[PreparedModel],
    samples: Samples,
    taus: Sequence[float],
    device: torch.device,
    seed: int,
    num_classes: int,
) -> CraftingDecision:
    """``auto`` with fp32 evaluation: craft the gradient probes' rows with bf16 gradients only where bf16 is
    supported and keeps the attack's strength on these models and samples.

    The check: one targeted signed-gradient step at the largest τ (FGSM, a random wrong target per row) on up to
    ``CRAFT_CHECK_ROWS`` forget samples, its gradient computed once in fp32 and once under bf16 autocast, both x'
    evaluated in fp32. bf16 crafting is chosen when, on every model, the bf16 step's success rate is at most
    ``MAX_CRAFT_STRENGTH_LOSS`` below the fp32 step's and at most ``MAX_CRAFT_DISAGREEMENT`` of the rows are
    predicted differently. The rows are always evaluated in fp32 (the evaluation precision), so bf16 changes
    which x' is probed, never how it is scored."""
    tau = max(taus) if taus else 0.0
    if not bf16_supported(device):
        return CraftingDecision("fp32", {}, 0, f"bf16 is not supported on {device.type} here")
    if tau <= 0.0 or len(samples) == 0:
        return CraftingDecision("fp32", {}, 0, "no τ > 0: nothing is crafted")
    n = min(len(samples), CRAFT_CHECK_ROWS)
    gen = torch.Generator().manual_seed((seed ^ 0xC4AF7) & ((1 << 63) - 1))
    idx = check_rows(samples, seed, n)
    x, y = samples.x[idx].to(device), samples.y[idx].to(device)
    target = random_targets(y, num_classes, gen)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    check: dict[str, dict[str, float]] = {}
    for model in prepared:
        outcome = []
        for autocast in (None, autocast_factory(device, "bf16")):
            moved = clip(x - tau * input_gradient(model.module, x, target, autocast).sign(), samples.bounds)
            with torch.inference_mode():
                outcome.append(model.module(moved).float().argmax(1))
        full, half = outcome
        check[model.name] = {
            "success_fp32": float((full == target).float().mean()),
            "success_bf16": float((half == target).float().mean()),
            "disagreement": float((full != half).float().mean()),
        }
    weaker = max(c["success_fp32"] - c["success_bf16"] for c in check.values())
    worst = max(c["disagreement"] for c in check.values())
    summary = (
        f"a targeted FGSM step at τ = {tau:.4g} crafted in bf16 succeeds {max(weaker, 0.0) * 100:.1f} points less "
        f"often than in fp32 at worst and changes {worst:.1%} of predictions"
    )
    limits = f"(limits {MAX_CRAFT_STRENGTH_LOSS * 100:g} points and {MAX_CRAFT_DISAGREEMENT:.0%})"
    if weaker <= MAX_CRAFT_STRENGTH_LOSS and worst <= MAX_CRAFT_DISAGREEMENT:
        return CraftingDecision("bf16", check, n, f"{summary} {limits}: rows crafted in bf16, scored in fp32")
    return CraftingDecision("fp32", check, n, f"{summary} {limits}: rows crafted in fp32")


def _warn_if_emulated(requested: str, device: torch.device, what: str) -> None:
    if requested == "bf16" and not bf16_supported(device):
        log.warning("%s requested but not supported natively on %s; it will be emulated (slow)", what, device)


def decide_precision(
    requested: str,
    served: bool,
    prepared: Sequence[PreparedModel],
    samples: Samples,
    taus: Sequence[float],
    device: torch.device,
    seed: int,
) -> PrecisionDecision:
    """The scoring precision (``EngineConfig.precision``); ``served``: a compared model is query-only."""
    if requested == "auto" and served:
        return PrecisionDecision("fp32", {}, 0, QUERY_ONLY)
    if requested == "auto":
        return choose_precision(prepared, samples, taus, device, seed)
    _warn_if_emulated(requested, device, "bf16")
    return PrecisionDecision(requested, {}, 0, "set explicitly")


def decide_crafting(
    requested: str,
    scoring_requested: str,
    scoring: PrecisionDecision,
    prepared: Sequence[PreparedModel],
    samples: Samples,
    taus: Sequence[float],
    device: torch.device,
    seed: int,
    num_classes: int,
) -> CraftingDecision:
    """The gradient probes' crafting precision (``EngineConfig.craft_precision``): as set; else the scoring
    precision where that was set explicitly or chosen bf16; else the crafting check."""
    if requested != "auto":
        _warn_if_emulated(requested, device, "bf16 crafting")
        return CraftingDecision(requested, {}, 0, "set explicitly")
    if scoring_requested != "auto" or scoring.precision != "fp32":
        return CraftingDecision(scoring.precision, {}, 0, "as the evaluation precision")
    if scoring.reason == QUERY_ONLY:
        return CraftingDecision("fp32", {}, 0, QUERY_ONLY)
    return choose_crafting_precision(prepared, samples, taus, device, seed, num_classes)
