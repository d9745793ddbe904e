"""What every loader of a model without its code shares: options, metadata, optional extras, the result."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ...device import resolve_device
from ...errors import CheckpointError, ConfigError
from ..auditable import AuditableModel, ModelMeta, _parse_floats, parse_shape

log = logging.getLogger(__name__)

#: Key in :attr:`ModelMeta.extra` naming the form the model arrived in (``pt2``, ``onnx``, ``timm``, ``hf``).
FORMAT_KEY = "model_format"


@dataclass(frozen=True)
class LoadOptions:
    """``load_model``'s arguments, parsed once. ``None`` means "not given": the file's own config decides."""

    arch: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    device: str | torch.device = "auto"
    allow_pickle: bool = False
    name: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        arch: str | None,
        num_classes: int | None,
        input_shape: Sequence[int] | str | None,
        mean: Sequence[float] | str | None,
        std: Sequence[float] | str | None,
        device: str | torch.device,
        allow_pickle: bool,
        name: str | None,
    ) -> LoadOptions:
        return cls(
            arch=arch,
            num_classes=int(num_classes) if num_classes is not None else None,
            input_shape=parse_shape(input_shape),
            mean=_parse_floats(mean, "mean"),
            std=_parse_floats(std, "std"),
            device=device,
            allow_pickle=allow_pickle,
            name=name,
        )


def require(module: str, extra: str, what: str, path: Path) -> ModuleType:
    """Import an optional dependency, or say in one line which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{path}: {what} needs the optional extra '{extra}': pip install 'unlearn-audit[{extra}]' "
            f"(missing Python module {module!r})"
        ) from exc


def package_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - importable but not installed as a distribution
        return "unknown"


def load_weights_strictly(path: Path, arch: str, net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``net.load_state_dict(state)`` with the state-dict loader's rules: wrapper prefixes stripped, missing
    BatchNorm counters tolerated, and any other mismatch refused with its one-line diagnosis."""
    from ..weights import _strip_prefixes, diagnose_mismatch

    expected = net.state_dict()
    state = _strip_prefixes(dict(state), set(expected))
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key].clone()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in expected):
        raise CheckpointError(diagnose_mismatch(path, arch, state, expected))
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def file_meta_for(
    path: Path,
    options: LoadOptions,
    file_meta: Any,
    *,
    arch: str,
    num_classes: int,
    input_shape: Sequence[int],
    mean: Any,
    std: Any,
    extra: Mapping[str, str],
) -> ModelMeta:
    """The :class:`ModelMeta` of a model read from ``path``: name (``--name`` or the file's stem), the file's class
    names, path and sha256, and its metadata's ``extra`` with the loader's ``extra`` on top."""
    from ..hashing import sha256_file

    return ModelMeta(
        name=options.name or path.stem,
        arch=arch,
        num_classes=int(num_classes),
        input_shape=tuple(input_shape),
        mean=mean,
        std=std,
        class_names=file_meta.class_names,
        path=str(path),
        sha256=sha256_file(path),
        extra={**(file_meta.extra or {}), **extra},
    )


def finish(net: nn.Module, meta: ModelMeta, device: str | torch.device) -> AuditableModel:
    """The loaded network behind its normalisation, frozen in eval mode on ``device``."""
    shape, mean = meta.input_shape, meta.mean
    if mean is not None and len(mean) > 1 and shape is not None and len(mean) != shape[0]:
        raise ConfigError(
            f"{meta.path or meta.name}: {len(mean)} mean/std values but the input has {shape[0]} channels/features "
            f"(input shape {list(shape)}); pass --mean/--std with 1 or {shape[0]} values"
        )
    model = AuditableModel(net, meta)
    return model.eval().to(resolve_device(device))
