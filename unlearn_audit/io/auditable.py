"""The model every part of the toolkit handles: :class:`AuditableModel` (a network behind its input
normalisation) and :class:`ModelMeta` (everything known about it besides its weights), with the parsers of the
metadata values a checkpoint stores (docs: :mod:`unlearn_audit.io.models`).

Every loader builds one: the state-dict loader (:mod:`.models`) and the loaders of models without their code
(:mod:`.formats`). Both import this module and :mod:`.weights`; neither imports the other's loader, so the
import graph stays acyclic.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .architectures import ARCH_ATTRIBUTE
from .hashing import sha256_state_dict

log = logging.getLogger(__name__)

KNOWN_METADATA_KEYS = ("arch", "num_classes", "input_shape", "mean", "std", "class_names")


@dataclass(frozen=True)
class ModelMeta:
    """Everything we know about a model besides its weights."""

    name: str = "model"
    arch: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    #: where ``input_shape`` came from ("--input-shape", "the file's metadata", ...); see io/shapes.py
    input_shape_source: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    path: str | None = None
    sha256: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["extra"] = dict(self.extra)
        for key in ("input_shape", "mean", "std", "class_names"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


class AuditableModel(nn.Module):
    """``net`` behind its normalisation. ``forward`` takes inputs in the data domain and returns logits."""

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(self, net: nn.Module, meta: ModelMeta | None = None) -> None:
        super().__init__()
        self.net = net
        self.meta = meta or ModelMeta()
        mean, std = self.meta.mean, self.meta.std
        if (mean is None) != (std is None):
            raise ConfigError(f"{self.meta.name}: give both mean and std, or neither")
        if mean is not None and std is not None:
            if len(mean) != len(std):
                raise ConfigError(f"{self.meta.name}: mean has {len(mean)} values but std has {len(std)}")
            if any(s <= 0 for s in std):
                raise ConfigError(f"{self.meta.name}: std values must be positive, got {list(std)}")
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        else:
            self.mean = None
            self.std = None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None or self.std is None:
            return x
        shape = [1, -1] + [1] * (x.dim() - 2) if self.mean.numel() > 1 else [1] * x.dim()
        return (x - self.mean.view(shape).to(x.dtype)) / self.std.view(shape).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x))

    @property
    def num_classes(self) -> int | None:
        return self.meta.num_classes

    def renamed(self, name: str) -> AuditableModel:
        """A wrapper with another display name that shares the network (the caller's own object keeps its name)."""
        out = copy.copy(self)
        out.meta = dataclasses.replace(self.meta, name=name)
        return out

    def with_meta(self, **changes: Any) -> AuditableModel:
        """Same network object, updated metadata (e.g. after inferring the class count)."""
        self.meta = dataclasses.replace(self.meta, **changes)
        return self


def distinct_names(references: list[AuditableModel], subjects: set[str]) -> list[AuditableModel]:
    """``references`` renamed ``name#i`` when a name repeats among them or names an audited model
    (``a/model.safetensors`` audited against ``b/model.safetensors``): results and precision checks key by name."""
    names = [r.meta.name for r in references]
    if len(set(names)) == len(names) and not subjects & set(names):
        return references
    renamed = [r.renamed(f"{r.meta.name}#{i}") for i, r in enumerate(references)]
    clash = sorted(subjects & {r.meta.name for r in renamed})
    if clash:
        raise ConfigError(f"an audited model and a reference are both named {clash[0]!r}; give the model another name")
    return renamed


def wrap_model(
    model: nn.Module,
    *,
    name: str = "model",
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> AuditableModel:
    """Accept a model already in memory. An :class:`AuditableModel` passes through unchanged."""
    if isinstance(model, AuditableModel):
        return model
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name}: expected a torch.nn.Module or a checkpoint path, got {type(model).__name__}")
    meta = ModelMeta(
        name=name,
        arch=getattr(model, ARCH_ATTRIBUTE, None) or type(model).__name__,
        num_classes=num_classes,
        input_shape=tuple(input_shape) if input_shape is not None else None,
        input_shape_source="given to wrap_model" if input_shape is not None else None,
        mean=tuple(float(m) for m in mean) if mean is not None else None,
        std=tuple(float(s) for s in std) if std is not None else None,
        sha256=sha256_state_dict(model),
    )
    return AuditableModel(model, meta)


def _json_list(meta: Mapping[str, str], key: str, path: Path) -> list[Any] | None:
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({meta[key]!r})") from exc
    if not isinstance(value, list):
        raise CheckpointError(f"{path}: metadata {key!r} must be a JSON list, got {meta[key]!r}")
    return value


def _parse_floats(value: Sequence[float] | str | None, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(float(v) for v in value.replace(" ", "").split(",") if v)
        except ValueError as exc:
            raise ConfigError(f"--{what} {value!r}: expected comma-separated numbers, e.g. 0.5,0.5,0.5") from exc
    return tuple(float(v) for v in value)


def parse_shape(value: Sequence[int] | str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.lower().replace(" ", "")
        separator = "," if "," in text else "x"
        try:
            shape = tuple(int(v) for v in text.split(separator))
        except ValueError as exc:
            raise ConfigError(f"--input-shape {value!r}: expected integers like 1,28,28 or 64") from exc
    else:
        shape = tuple(int(v) for v in value)
    if not shape or any(s <= 0 for s in shape):
        raise ConfigError(f"--input-shape {value!r}: every dimension must be a positive integer")
    return shape


def choose(path: Path, key: str, given: Any, from_file: Any, source: str = "the file's metadata") -> Any:
    """An explicit option wins over the file's own value; a disagreement is logged, never silent."""
    if given is not None and from_file is not None and given != from_file:
        log.warning("%s: --%s %s overrides %s value %s", path, key.replace("_", "-"), given, source, from_file)
    return given if given is not None else from_file


@dataclass(frozen=True)
class FileMetadata:
    """Our metadata keys (see :mod:`unlearn_audit.io.models`) as stored beside a program: ONNX
    ``metadata_props`` or ``.pt2`` extra files. Unknown keys are kept in ``extra``."""

    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    extra: Mapping[str, str] | None = None

    @classmethod
    def parse(cls, meta: Mapping[str, str], path: Path) -> FileMetadata:
        shape = _json_list(meta, "input_shape", path)
        mean = _json_list(meta, "mean", path)
        std = _json_list(meta, "std", path)
        names = _json_list(meta, "class_names", path)
        try:
            classes = int(meta["num_classes"]) if "num_classes" in meta else None
        except ValueError as exc:
            raise CheckpointError(f"{path}: metadata num_classes {meta['num_classes']!r} is not an integer") from exc
        try:
            return cls(
                num_classes=classes,
                input_shape=tuple(int(s) for s in shape) if shape else None,
                mean=tuple(float(v) for v in mean) if mean else None,
                std=tuple(float(v) for v in std) if std else None,
                class_names=tuple(str(c) for c in names) if names else None,
                extra={k: v for k, v in meta.items() if k not in KNOWN_METADATA_KEYS},
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: metadata input_shape/mean/std must be lists of numbers ({exc})") from exc
