"""Which layer of a stranger's network reads the input first, and how many channels or features it wants.

Module registration order is not execution order (a class may define its head before its trunk), so the
primary method *runs* the network once, on one sample or a small zero image, under a
:class:`torch.overrides.TorchFunctionMode` that follows every tensor derived from the input. The first
convolution, linear map, matrix product or normalisation that receives such a tensor is the first layer that
consumes the input; the run is stopped before that layer computes anything. This sees functional calls
(``F.conv2d(x, self.w)``), normalisation buffers and data-dependent Python control flow, which is exactly what
``torch.fx`` cannot trace.

When the network cannot run at all on a probe input (it raises, or it is TorchScript, which the mode cannot see
into), the weights alone decide: the first registered conv / linear / normalisation layer, else the first
parameter that looks like a conv or linear weight. That fallback is said to be a guess in its description.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

Kind = Literal["channels", "features", "shape"]


@dataclass(frozen=True)
class FirstLayer:
    """What the first consuming layer wants: ``channels`` of a C×H×W image, flat ``features``, or a full ``shape``."""

    kind: Kind
    value: tuple[int, ...]
    tensor: str | None  # the parameter or buffer that says so, e.g. "features.0.weight"
    tensor_shape: tuple[int, ...]
    method: Literal["trace", "weights"]
    passes: bool = True  # the input's channel axis (or flattened size) reaches the layer unchanged

    def evidence(self) -> str:
        what = f"{self.tensor} {list(self.tensor_shape)}" if self.tensor else f"a tensor {list(self.tensor_shape)}"
        if self.method == "trace":
            return f"{what}, the first layer that reads the input"
        return f"{what}, the first registered layer (the forward could not be traced, so this is a guess)"


class _Found(BaseException):  # BaseException: a stranger's `except Exception` inside forward must not swallow it
    def __init__(self, layer: FirstLayer) -> None:
        super().__init__()
        self.layer = layer


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _aten(*names: str) -> list[Any]:
    """ATen overloads (what torch.export programs call), skipping any this torch does not have."""
    ops = []
    for name in names:
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None and hasattr(packet, "default"):
            ops.append(packet.default)
    return ops


# Consumers, per family. Positions follow each function's signature; ATen overloads are what torch.export calls.
_CONVS: dict[Any, tuple[str, int]] = {  # -> (conv or transpose, position of groups)
    **{f: ("conv", 6) for f in (torch.conv1d, torch.conv2d, torch.conv3d, *_aten("conv1d", "conv2d", "conv3d"))},
    **{f: ("transpose", 6) for f in (torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d)},
    **{f: ("convolution", 8) for f in _aten("convolution", "_convolution")},
}
_NORMS: dict[Any, tuple[tuple[int, str], ...]] = {  # -> (position, name) of tensors that carry the channel count
    F.batch_norm: ((1, "running_mean"), (3, "weight")),
    F.instance_norm: ((1, "running_mean"), (3, "weight")),
    F.group_norm: ((2, "weight"),),
    torch.group_norm: ((2, "weight"),),
    **{f: ((2, "weight"),) for f in _aten("group_norm")},
    **{
        f: ((3, "running_mean"), (1, "weight"))
        for f in (torch.batch_norm, torch.instance_norm, *_aten("batch_norm", "_native_batch_norm_legit_no_training"))
    },
}
_LINEARS = (F.linear, torch._C._nn.linear, *_aten("linear"))
_MATMULS = (
    torch.matmul,
    torch.mm,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.__matmul__,
    *_aten("mm", "matmul"),
)
_LAYER_NORMS = (F.layer_norm, torch.layer_norm, *_aten("layer_norm"))
_ADDMMS = (torch.addmm, *_aten("addmm"))
#: Results that depend only on the input's shape or dtype, never its values: not derived from the input.
_SHAPE_ONLY = {
    torch.zeros_like,
    torch.ones_like,
    torch.empty_like,
    torch.full_like,
    torch.rand_like,
    torch.randn_like,
    torch.randint_like,
    torch.Tensor.new_zeros,
    torch.Tensor.new_ones,
    torch.Tensor.new_empty,
    torch.Tensor.new_full,
    torch.Tensor.new_tensor,
}


class _InputTracer(TorchFunctionMode):
    """Follows tensors derived from ``probe``; raises :class:`_Found` at the first layer that consumes one."""

    def __init__(self, probe: torch.Tensor, names: dict[int, str]) -> None:
        super().__init__()
        self.probe_shape = tuple(probe.shape)
        self.derived: dict[int, torch.Tensor] = {id(probe): probe}  # strong refs keep ids unique
        self.names = names

    def is_derived(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and id(value) in self.derived

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        leaves = tree_flatten((args, kwargs))[0]
        derived = any(self.is_derived(t) for t in leaves)
        if derived:
            layer = self._consumer(func, args, kwargs)
            if layer is not None:
                raise _Found(layer)
        out = func(*args, **kwargs)
        if derived and func not in _SHAPE_ONLY:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.derived[id(t)] = t
        return out

    def _layer(self, kind: Kind, value: tuple[int, ...], tensor: torch.Tensor, passes: bool) -> FirstLayer:
        return FirstLayer(kind, value, self.names.get(id(tensor)), tuple(tensor.shape), "trace", passes)

    def _channel_axis_passes(self, x: torch.Tensor) -> bool:
        return x.dim() == len(self.probe_shape) and x.dim() >= 3 and x.shape[1] == self.probe_shape[1]

    def _flat_passes(self, x: torch.Tensor) -> bool:
        return x.dim() == 2 and x.shape[1] == math.prod(self.probe_shape[1:])

    def _consumer(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> FirstLayer | None:
        x = _arg(args, kwargs, 0, "input")
        if not self.is_derived(x):
            if func in _ADDMMS and self.is_derived(_arg(args, kwargs, 1, "mat1")):
                weight = _arg(args, kwargs, 2, "mat2")
                x = args[1]
                return self._layer("features", (int(weight.shape[0]),), weight, self._flat_passes(x))
            return None
        if func in _CONVS:
            weight = _arg(args, kwargs, 1, "weight")
            family, groups_at = _CONVS[func]
            if family == "convolution" and _arg(args, kwargs, 6, "transposed", False):
                family = "transpose"
            if family == "transpose":
                channels = int(weight.shape[0])
            else:
                channels = int(weight.shape[1]) * int(_arg(args, kwargs, groups_at, "groups", 1))
            return self._layer("channels", (channels,), weight, self._channel_axis_passes(x))
        if func in _NORMS:
            for index, name in _NORMS[func]:
                tensor = _arg(args, kwargs, index, name)
                if isinstance(tensor, torch.Tensor):
                    if x.dim() == 2:
                        return self._layer("features", (int(tensor.shape[0]),), tensor, self._flat_passes(x))
                    return self._layer("channels", (int(tensor.shape[0]),), tensor, self._channel_axis_passes(x))
            return None
        if func in _LINEARS or func in _MATMULS:
            weight = _arg(args, kwargs, 1, "weight" if func in _LINEARS else "other")
            if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
                return None
            features = int(weight.shape[1] if func in _LINEARS else weight.shape[0])
            if x.dim() == 2 or len(self.probe_shape) == 2:
                return self._layer("features", (features,), weight, self._flat_passes(x))
            return self._layer("features", (features,), weight, False)  # a linear map over the image's last axis
        if func in _LAYER_NORMS:
            normalized = tuple(int(s) for s in _arg(args, kwargs, 1, "normalized_shape"))
            weight = _arg(args, kwargs, 2, "weight")
            shown = weight if isinstance(weight, torch.Tensor) else torch.empty(normalized)
            if len(normalized) == 3 and x.dim() == 4:
                return self._layer("shape", normalized, shown, self._channel_axis_passes(x))
            if len(normalized) == 1 and x.dim() == 2:
                return self._layer("features", normalized, shown, self._flat_passes(x))
        return None


def _tensor_names(net: nn.Module) -> dict[int, str]:
    names = {id(t): n for n, t in net.named_buffers()}
    names.update({id(p): n for n, p in net.named_parameters()})
    return names


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[None]:
    """Every module's training flag off, then each restored to what it was. Sets the flags directly: some
    modules (torch.export's) refuse ``.eval()``."""
    modes = [(m, m.training) for m in net.modules()]
    for module, _ in modes:
        module.training = False
    try:
        yield
    finally:
        for module, flag in modes:
            module.training = flag


def trace_first_layer(net: nn.Module, probe: torch.Tensor) -> FirstLayer | str:
    """Run ``net`` on ``probe`` until its first input-consuming layer; the layer, or why it was not reached.

    The network runs in eval mode without gradients, and each module's training flag is restored afterwards."""
    try:
        with eval_mode(net), torch.no_grad(), _InputTracer(probe, _tensor_names(net)):
            net(probe)
    except _Found as found:
        return found.layer
    except Exception as exc:  # noqa: BLE001 - a stranger's forward may raise anything on a probe input
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"{type(exc).__name__}: {first}"[:200]
    return "the forward reached no convolution, linear or normalisation call (TorchScript or an unknown layer)"


_NORM_MODULES = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def first_layer_from_weights(net: nn.Module) -> FirstLayer | None:
    """The first registered conv / linear / normalisation layer (or conv/linear-like parameter): a guess."""

    def found(kind: Kind, value: int | tuple[int, ...], name: str, tensor: torch.Tensor | None) -> FirstLayer:
        shape = tuple(tensor.shape) if tensor is not None else ()
        values = (value,) if isinstance(value, int) else value
        return FirstLayer(kind, tuple(int(v) for v in values), name, shape, "weights")

    for prefix, module in net.named_modules():
        name = f"{prefix}.weight" if prefix else "weight"
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.parameter.UninitializedParameter):
            continue
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            return found("channels", module.in_channels, name, weight)
        if isinstance(module, nn.modules.conv._ConvNd):
            return found("channels", module.in_channels, name, weight)
        if isinstance(module, nn.Linear):
            return found("features", module.in_features, name, weight)
        if isinstance(module, _NORM_MODULES):
            return found("channels", module.num_features, name, weight)
        if isinstance(module, nn.GroupNorm):
            return found("channels", module.num_channels, name, weight)
        if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) in (1, 3):
            shape = tuple(module.normalized_shape)
            return found("shape" if len(shape) == 3 else "features", shape, name, weight)
    for name, param in net.named_parameters():
        if param.dim() in (3, 4, 5):
            return found("channels", int(param.shape[1]), name, param)
        if param.dim() == 2:
            return found("features", int(param.shape[1]), name, param)
    return None


PROBE_BATCH = 2  # not 1: some exported programs are specialised to a batch size, and 2 is common
DEFAULT_PROBE_SHAPES = ((1, 28, 28), (3, 32, 32), (1, 32, 32), (3, 224, 224))


def probe_inputs(sample: torch.Tensor | None, device: torch.device) -> list[torch.Tensor]:
    """Inputs to trace with: the real first sample, then zero images of its size with 1 and 3 channels (or, with
    no sample, a few common image sizes)."""
    probes: list[torch.Tensor] = []
    shapes: list[tuple[int, ...]] = list(DEFAULT_PROBE_SHAPES)
    if sample is not None:
        probes.append(sample[:PROBE_BATCH].to(device=device, dtype=torch.float32))
        inner = tuple(int(s) for s in sample.shape[1:])
        shapes = [(c, *inner[1:]) for c in (1, 3)] if len(inner) == 3 else []
    probes += [torch.zeros((PROBE_BATCH, *s), device=device) for s in shapes]
    return probes


def find_first_layer(net: nn.Module, sample: torch.Tensor | None = None) -> tuple[FirstLayer | None, str]:
    """The first layer that consumes the input, and a note on how it was found (or why it was not).

    Probes run in turn until one reaches a layer. If the tensor reaching it no longer has the probe's channel
    count (or flattened size), the network reshapes its input itself: nothing is inferred."""
    device = next((t.device for t in [*net.parameters(), *net.buffers()]), torch.device("cpu"))
    failures: list[str] = []
    for probe in probe_inputs(sample, device):
        outcome = trace_first_layer(net, probe)
        if isinstance(outcome, FirstLayer):
            if outcome.passes:
                return outcome, "traced"
            return None, (
                f"the first layer ({outcome.tensor or 'a tensor'} {list(outcome.tensor_shape)}) does not see the "
                "input's channels or flattened values as given (the network reshapes them itself)"
            )
        failures.append(outcome)
    guess = first_layer_from_weights(net)
    reason = failures[0] if failures else "no probe input"
    if guess is None:
        return None, f"the forward could not be traced ({reason}) and no weight names a first layer"
    return guess, f"the forward could not be traced ({reason})"


def file_channels(net: nn.Module, state: dict[str, torch.Tensor], shape: Sequence[int]) -> tuple[int, str] | None:
    """The input channels a checkpoint's first conv takes when they differ from ``net``'s (built for ``shape``).

    Returns ``(channels, "conv1.weight [64, 1, 7, 7]")``, or None when the first layer is not a conv, its tensor
    is not in ``state``, or the channel counts agree."""
    if len(shape) != 3:
        return None
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    layer = trace_first_layer(net, torch.zeros((1, *shape), device=device))
    if not isinstance(layer, FirstLayer) or layer.kind != "channels" or layer.tensor is None:
        return None
    built, saved = net.state_dict().get(layer.tensor), state.get(layer.tensor)
    if built is None or saved is None or saved.dim() != built.dim() or saved.dim() < 3:
        return None
    groups = layer.value[0] // int(built.shape[1])
    if int(built.shape[1]) * groups != layer.value[0] or saved.shape[0] != built.shape[0]:
        return None  # a transposed conv, or not the same layer
    channels = int(saved.shape[1]) * groups
    if channels == shape[0]:
        return None
    return channels, f"{layer.tensor} {list(saved.shape)}"
