"""Frozen inference graphs for scoring: every model scores every perturbed row, forward only, and on CPU in fp32
a frozen TorchScript graph (``torch.jit.freeze`` + ``optimize_for_inference``: oneDNN convolution fused with
its ReLU, pooling without the indices a backward would need, weights prepacked) does it 1.2–1.7× faster than
the eager module (``benchmarks/model_levers.py``; docs/performance.md). Crafting keeps the eager module: a frozen
graph gives no input gradient.

A graph is built only where it is safe and pays back:

* the network traces with ``torch.fx`` (no data-dependent control flow, so one trace is the whole model), and is
  a plain module (not an exported program or a served model);
* scoring is fp32 on CPU, and the audit scores at least ``FREEZE_MIN_ROWS`` rows per probe. Building and
  checking three graphs took 0.05–0.3 s (small CNNs to ResNet-18), and scoring 10,000 rows by three models
  saves 0.14 s (the bundled CNN), 0.25 s (the VGG of docs/performance.md) and 1.2 s (ResNet-18): it pays back
  from about 2,500–3,500 rows, and the threshold keeps a margin of about three;
* on rows of another batch size than the trace's, the frozen graph gives the eager module's predictions and
  logits within 1e-4 (relative) — otherwise the eager module scores, and ``-v`` says why.

Frozen and eager scoring compute the same function with the floating-point operations in another order, so a
prediction on a row that sits on a decision boundary to within ~1e-6 can differ (as it can between two CPUs);
the reference cache and the torchrun shard keys say which scoring produced their counts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
import torch.fx
from torch import nn

from .access import query_only
from .preparation import exported_program

log = logging.getLogger(__name__)

FREEZE_MIN_ROWS = 10_000


def frozen_scorer(module: nn.Module, example: torch.Tensor, name: str = "model") -> nn.Module | None:
    """A frozen inference graph of ``module`` (an AuditableModel: normalisation included), or None."""
    net = getattr(module, "net", module)
    if query_only(module):
        return None
    if exported_program(net):
        log.info("%s: scored eagerly (an exported program runs as exported)", name)
        return None
    if not isinstance(net, torch.fx.GraphModule):
        try:
            torch.fx.symbolic_trace(net)
        except Exception as exc:  # noqa: BLE001 - not traceable: it stays eager
            log.info("%s: scored eagerly (not traceable by torch.fx: %s)", name, type(exc).__name__)
            return None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices: the API is still there in torch 2.x
            traced = torch.jit.trace(module.eval(), example[:2], check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            eager, out = module(example).float(), frozen(example).float()
    except Exception as exc:  # noqa: BLE001 - any failure to build or run the graph: eager scoring
        log.info("%s: scored eagerly (no frozen graph: %s)", name, type(exc).__name__)
        return None
    scale = float(eager.abs().max()) + 1e-6
    if (
        out.shape != eager.shape
        or not torch.equal(out.argmax(1), eager.argmax(1))
        or (float((out - eager).abs().max()) > 1e-4 * scale)
    ):
        log.info("%s: scored eagerly (its frozen graph disagrees with the module)", name)
        return None
    log.info("%s: scored by a frozen inference graph", name)
    return frozen


def build_scorers(
    modules: Sequence[nn.Module], names: Sequence[str], example: torch.Tensor, precision: str, rows: int
) -> dict[int, nn.Module]:
    """Frozen scorers by model index, where :func:`frozen_scorer` gives one and the audit is big enough."""
    if precision != "fp32" or example.device.type != "cpu" or rows < FREEZE_MIN_ROWS or len(example) < 3:
        return {}
    scorers = {}
    for i, (module, name) in enumerate(zip(modules, names, strict=True)):
        scorer = frozen_scorer(module, example, name)
        if scorer is not None:
            scorers[i] = scorer
    return scorers
