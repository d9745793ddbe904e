"""Architecture registry: names (``mlp``, ``small-cnn``, ``resnet18-cifar``, any torchvision classifier) and
user factories (``path/to/file.py:build`` or ``package.module:build``).

A builder takes ``num_classes`` and ``input_shape`` (C, H, W) or (D,) and returns an ``nn.Module`` that maps
*normalised* inputs to logits. Normalisation itself lives in :class:`unlearn_audit.io.models.AuditableModel`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

Builder = Callable[[int, tuple[int, ...]], nn.Module]

_REGISTRY: dict[str, tuple[Builder, tuple[int, ...] | None]] = {}


def register_architecture(
    name: str, builder: Builder, default_input_shape: Sequence[int] | None = None, *, force: bool = False
) -> None:
    """Add ``name`` to the registry. ``force=True`` replaces an existing entry on purpose."""
    if name in _REGISTRY and not force:
        raise ConfigError(f"architecture {name!r} is already registered; pass force=True to replace it")
    shape = tuple(int(s) for s in default_input_shape) if default_input_shape is not None else None
    _REGISTRY[name] = (builder, shape)


def registered_architectures() -> list[str]:
    return sorted(_REGISTRY)


class MLP(nn.Module):
    """Flatten, then ``hidden`` ReLU layers, then a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-maxpool blocks and a two-layer head. About 52k parameters on 1x28x28."""

    def __init__(self, in_channels: int, height: int, width: int, num_classes: int, widths=(8, 16), hidden=64):
        super().__init__()
        c1, c2 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * (height // 4) * (width // 4), hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"--arch {name}: needs an image input shape C,H,W; got {','.join(map(str, input_shape))}")
    c, h, w = input_shape
    return c, h, w


def _build_mlp(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return MLP(math.prod(input_shape), num_classes)


def _build_small_cnn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    c, h, w = _image_shape("small-cnn", input_shape)
    if h < 4 or w < 4:
        raise ConfigError(f"--arch small-cnn: input {h}x{w} is too small; needs at least 4x4")
    return SmallCNN(c, h, w, num_classes)


def _build_resnet18_cifar(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """The usual CIFAR ResNet-18: torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool."""
    import torchvision

    c, _, _ = _image_shape("resnet18-cifar", input_shape)
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(c, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()  # type: ignore[assignment]
    return net


def _torchvision_builder(name: str) -> Builder:
    def build(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        import torchvision

        c, _, _ = _image_shape(name, input_shape)
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if c != 3:
            _replace_first_conv(net, c)
        return net

    return build


def _replace_first_conv(net: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for one with ``in_channels`` inputs (e.g. greyscale ResNets)."""
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(
                    in_channels,
                    child.out_channels,
                    child.kernel_size,  # type: ignore[arg-type]
                    child.stride,  # type: ignore[arg-type]
                    child.padding,  # type: ignore[arg-type]
                    bias=child.bias is not None,
                )
                setattr(parent, child_name, new)
                return


def torchvision_classifiers() -> list[str]:
    import torchvision

    try:
        return sorted(torchvision.models.list_models(module=torchvision.models))
    except Exception:  # pragma: no cover - very old torchvision
        return []


def _load_factory(spec: str) -> Callable[..., nn.Module]:
    """``path/to/file.py:build`` or ``package.module:build``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"--arch {spec!r}: a factory is written file.py:function or package.module:function")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(f"--arch {spec!r}: factory file {path} does not exist")
        mod_name = f"_unlearn_audit_factory_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"--arch {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"--arch {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ConfigError(f"--arch {spec!r}: cannot import module {target!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"--arch {spec!r}: {target} has no callable named {attr!r}")
    return factory


def is_factory_spec(arch: str) -> bool:
    return ":" in arch


def default_input_shape(arch: str) -> tuple[int, ...] | None:
    if arch in _REGISTRY:
        return _REGISTRY[arch][1]
    if not is_factory_spec(arch) and arch in torchvision_classifiers():
        return (3, 224, 224)
    return None


def _mlp_widths(arch: str) -> tuple[int, ...] | None:
    """``mlp-128x64`` -> (128, 64); ``mlp-0`` -> () (a linear model); None if ``arch`` is not of that form."""
    if not arch.startswith("mlp-"):
        return None
    body = arch[4:]
    try:
        widths = tuple(int(w) for w in body.split("x"))
    except ValueError:
        return None
    if widths == (0,):
        return ()
    return widths if all(w > 0 for w in widths) else None


ARCH_ATTRIBUTE = "unlearn_audit_arch"
"""Attribute set on every network built here, so that a model built in memory and saved keeps its ``--arch``."""


def build_architecture(arch: str, num_classes: int, input_shape: tuple[int, ...] | None) -> nn.Module:
    """Instantiate ``arch`` (registry name, torchvision name or factory) for ``num_classes`` outputs."""
    net = _build(arch, num_classes, input_shape)
    setattr(net, ARCH_ATTRIBUTE, arch)
    return net


def _build(arch: str, num_classes: int, input_shape: tuple[int, ...] | None) -> nn.Module:
    if num_classes < 2:
        raise ConfigError(f"--num-classes {num_classes}: a classifier needs at least 2 classes")
    widths = _mlp_widths(arch)
    if widths is not None:
        if input_shape is None:
            raise ConfigError(f"--arch {arch}: input shape unknown; pass --input-shape (e.g. 64 or 1,28,28)")
        return MLP(math.prod(input_shape), num_classes, widths)
    if is_factory_spec(arch):
        factory = _load_factory(arch)
        params = inspect.signature(factory).parameters
        kwargs: dict[str, object] = {}
        if "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs["num_classes"] = num_classes
        if input_shape is not None and "input_shape" in params:
            kwargs["input_shape"] = tuple(input_shape)
        try:
            net = factory(**kwargs) if kwargs else factory(num_classes)
        except Exception as exc:
            raise ConfigError(f"--arch {arch!r}: factory raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(net, nn.Module):
            raise ConfigError(f"--arch {arch!r}: factory returned {type(net).__name__}, expected a torch.nn.Module")
        return net
    shape = input_shape if input_shape is not None else default_input_shape(arch)
    if arch in _REGISTRY:
        builder, _ = _REGISTRY[arch]
        if shape is None:
            raise ConfigError(f"--arch {arch}: input shape unknown; pass --input-shape (e.g. 1,28,28)")
        return builder(num_classes, tuple(shape))
    if arch in torchvision_classifiers():
        return _torchvision_builder(arch)(num_classes, tuple(shape or (3, 224, 224)))
    known = ", ".join(registered_architectures())
    raise ConfigError(
        f"--arch {arch!r}: unknown architecture; use one of {known} (or mlp-WxW), a torchvision classifier name "
        "(resnet18, resnet50, vgg11_bn, ...), or a factory file.py:function"
    )


register_architecture("mlp", _build_mlp, None)
register_architecture("small-cnn", _build_small_cnn, (1, 28, 28))
register_architecture("resnet18-cifar", _build_resnet18_cifar, (3, 32, 32))
