"""torch.export programs (``.pt2``): a model without its Python source, run as an autograd-capable module.

A ``.pt2`` reaches torch only through :func:`.pt2_safety.load_program`, which documents what loading one can and
cannot execute and refuses the rest. This module turns the checked program into an auditable classifier: one
tensor in (``[batch, ...]``, batch dynamic), one logits tensor out, batched within the program's batch range
(:class:`ExportedClassifier`), with input shapes checked instead of the dropped guards and eval-mode BatchNorm
foldable like the probe engine folds a module's (:func:`fold_aten_batchnorm`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, InputError
from ..auditable import AuditableModel, FileMetadata, choose
from .common import FORMAT_KEY, LoadOptions, file_meta_for, finish
from .pt2_safety import REEXPORT_HINT, load_program

log = logging.getLogger(__name__)

__all__ = ["ExportedClassifier", "ProgramSignature", "fold_aten_batchnorm", "load_pt2", "program_signature"]


def _tensor_value(node: torch.fx.Node) -> Any:
    return node.meta.get("val")


@dataclass(frozen=True)
class ProgramSignature:
    input_shape: tuple[int | None, ...]
    num_classes: int | None
    batch_min: int
    batch_max: int | None


def program_signature(path: Path, program: torch.export.ExportedProgram) -> ProgramSignature:
    """Input shape, class count and the batch dimension's range, from the program's own signature."""
    sig = program.graph_signature
    if sig.buffers_to_mutate or getattr(sig, "user_inputs_to_mutate", None):
        raise CheckpointError(
            f"{path}: the program updates its buffers or inputs (exported in training mode?); call model.eval() "
            f"before exporting: {REEXPORT_HINT}"
        )
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if len(sig.user_inputs) != 1:
        raise CheckpointError(
            f"{path}: the program takes {len(sig.user_inputs)} inputs; an auditable classifier takes one image "
            "or feature tensor (export a wrapper with forward(x) -> logits)"
        )
    value = _tensor_value(placeholders[str(sig.user_inputs[0])])
    if not isinstance(value, torch.Tensor) or value.dim() < 2:
        raise CheckpointError(f"{path}: the program's input is not a [batch, ...] tensor")
    if len(sig.user_outputs) != 1:
        raise CheckpointError(
            f"{path}: the program returns {len(sig.user_outputs)} values; export a wrapper that returns the logits only"
        )
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    outputs = output_node.args[0]
    out_value = _tensor_value(outputs[-1]) if isinstance(outputs, list | tuple) and outputs else None
    if not isinstance(out_value, torch.Tensor) or out_value.dim() != 2:
        raise CheckpointError(f"{path}: the program does not return [batch, num_classes] logits")
    batch = value.shape[0]
    if not isinstance(batch, torch.SymInt):
        raise CheckpointError(
            f"{path}: the program was exported with a fixed batch size of {int(batch)}; an audit runs other "
            f"batch sizes. Re-export with a dynamic batch dimension: {REEXPORT_HINT}"
        )
    bounds = program.range_constraints.get(batch.node.expr)
    lower = _finite(bounds.lower) if bounds is not None else None
    upper = _finite(bounds.upper) if bounds is not None else None
    shape = tuple(int(s) if not isinstance(s, torch.SymInt) else None for s in value.shape[1:])
    classes = out_value.shape[1]
    return ProgramSignature(
        shape, None if isinstance(classes, torch.SymInt) else int(classes), max(lower or 0, 1), upper
    )


def _finite(bound: Any) -> int | None:
    """A range bound as an int; None for ±infinity (sympy's oo or torch's int_oo)."""
    import sympy

    return int(bound) if isinstance(bound, int | sympy.Integer) else None


class ExportedClassifier(nn.Module):
    """An exported program's module, batched within the program's batch range, with its input shape checked."""

    def __init__(self, program: nn.Module, input_shape: tuple[int, ...], batch_min: int, batch_max: int | None):
        super().__init__()
        self.program = program
        self.input_shape = tuple(input_shape)
        self.batch_min = batch_min
        self.batch_max = batch_max

    def train(self, mode: bool = True) -> ExportedClassifier:
        """A program has no train/eval switch (torch refuses ``.train()`` on it): it always runs the graph it
        was exported with, which :func:`load_pt2` has checked is the eval-mode graph."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"input of shape {list(x.shape[1:])} per sample, but the exported program takes {list(self.input_shape)}"
            )
        n = x.shape[0]
        if self.batch_min <= n and (self.batch_max is None or n <= self.batch_max):
            return self.program(x)
        step = self.batch_max or n
        chunks = []
        for start in range(0, n, step):
            chunk = x[start : start + step]
            rows = chunk.shape[0]
            if rows < self.batch_min:  # repeat the last row; its logits are dropped (rows are independent in eval)
                chunk = torch.cat([chunk, chunk[-1:].expand(self.batch_min - rows, *chunk.shape[1:])])
            chunks.append(self.program(chunk)[:rows])
        return torch.cat(chunks)

    def fold_batchnorm(self) -> int:
        """Fold eval-mode BatchNorm into the preceding convolution/linear in the program's ATen graph.

        The probe engine folds BatchNorm modules with torch.fx (``fuse_conv_bn_eval``); this is the same fold for
        a graph of ATen calls, using the same arithmetic (``fuse_conv_bn_weights``/``fuse_linear_bn_weights``),
        so an exported model and its source audit to identical counts. Returns the number of folds."""
        if isinstance(self.program, torch.fx.GraphModule):
            return fold_aten_batchnorm(self.program)
        return 0


_CONVOLUTIONS = ("aten::conv1d", "aten::conv2d", "aten::conv3d")


def fold_aten_batchnorm(graph_module: torch.fx.GraphModule) -> int:
    import operator

    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    def attribute(node: Any) -> torch.Tensor | None:
        if node is None:
            return None
        if not isinstance(node, torch.fx.Node) or node.op != "get_attr":
            raise LookupError
        value = graph_module
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return value  # type: ignore[return-value]

    folds = 0
    for bn in list(graph_module.graph.nodes):
        name = bn.target.name() if isinstance(bn.target, torch._ops.OpOverload) else ""
        if name == "aten::batch_norm" and len(bn.args) >= 8 and not bn.args[5]:
            source, eps, result = bn.args[0], float(bn.args[7]), bn
        elif name == "aten::_native_batch_norm_legit_no_training" and len(bn.args) >= 7:
            users = list(bn.users)
            if len(users) != 1 or users[0].target is not operator.getitem or users[0].args[1] != 0:
                continue
            source, eps, result = bn.args[0], float(bn.args[6]), users[0]
        else:
            continue
        layer = ""
        if isinstance(source, torch.fx.Node) and isinstance(source.target, torch._ops.OpOverload):
            layer = source.target.name()
        if layer not in (*_CONVOLUTIONS, "aten::linear") or len(source.users) != 1 or source.kwargs:
            continue
        try:
            weight, bias = attribute(source.args[1]), attribute(source.args[2] if len(source.args) > 2 else None)
            bn_weight, bn_bias, mean, var = (attribute(bn.args[i]) for i in (1, 2, 3, 4))
        except (LookupError, AttributeError):
            continue
        if weight is None or mean is None or var is None:
            continue
        if layer == "aten::linear":
            if bn_weight is None or bn_bias is None:
                continue
            new_weight, new_bias = fuse_linear_bn_weights(weight, bias, mean, var, eps, bn_weight, bn_bias)
        else:
            new_weight, new_bias = fuse_conv_bn_weights(weight, bias, mean, var, eps, bn_weight, bn_bias)
        prefix = f"_folded_batchnorm_{folds}"
        graph_module.register_parameter(f"{prefix}_weight", nn.Parameter(new_weight.detach(), requires_grad=False))
        graph_module.register_parameter(f"{prefix}_bias", nn.Parameter(new_bias.detach(), requires_grad=False))
        with graph_module.graph.inserting_before(source):
            weight_node = graph_module.graph.get_attr(f"{prefix}_weight")
            bias_node = graph_module.graph.get_attr(f"{prefix}_bias")
        args = list(source.args)
        args[1] = weight_node
        if len(args) > 2:
            args[2] = bias_node
        else:
            args.append(bias_node)
        source.args = tuple(args)
        result.replace_all_uses_with(source)
        for dead in (result, bn) if result is not bn else (bn,):
            graph_module.graph.erase_node(dead)
        folds += 1
    if folds:
        graph_module.graph.eliminate_dead_code()
        graph_module.graph.lint()
        graph_module.recompile()
    return folds


# ------------------------------------------------------------------------------------------------ loading


def load_pt2(path: Path, options: LoadOptions) -> AuditableModel:
    """Load a ``.pt2`` file (:mod:`.pt2_safety` says what is checked before torch reads any of it)."""
    checked = load_program(path)
    program, exported_with = checked.program, checked.exported_with
    signature = program_signature(path, program)
    file_meta = FileMetadata.parse(checked.extra_files, path)

    program_shape = signature.input_shape if None not in signature.input_shape else None
    shape = choose(path, "input_shape", options.input_shape, program_shape, "the program's input shape")
    if shape is None:
        shape = file_meta.input_shape
    if shape is None:
        raise CheckpointError(
            f"{path}: the program's input has dynamic dimensions besides the batch {list(signature.input_shape)}; "
            "pass --input-shape"
        )
    if program_shape is not None and tuple(shape) != program_shape:
        raise CheckpointError(
            f"{path}: --input-shape {list(shape)} does not match the program's input {list(program_shape)}"
        )
    classes = choose(path, "num_classes", options.num_classes, signature.num_classes, "the program's output")
    if signature.num_classes is not None and classes != signature.num_classes:
        raise CheckpointError(
            f"{path}: --num-classes {classes} but the program returns {signature.num_classes} logits per sample"
        )
    mean = choose(path, "mean", options.mean, file_meta.mean)
    std = choose(path, "std", options.std, file_meta.std)
    if mean is None:
        log.info("%s: no normalisation recorded with the program; inputs are used as given (--mean/--std)", path)
    net = ExportedClassifier(program.module(), tuple(shape), signature.batch_min, signature.batch_max)
    extra = {FORMAT_KEY: "pt2", **({"exported_with_torch": exported_with} if exported_with else {})}
    meta = file_meta_for(
        path, options, file_meta, arch=f"torch.export:{path.name}", num_classes=classes, input_shape=shape,
        mean=mean, std=std, extra=extra,
    )  # fmt: skip
    return finish(net, meta, options.device)
