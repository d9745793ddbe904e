"""``--arch timm:NAME``: a timm architecture built from its registry name, weights from a state dict.

The network is built with ``timm.create_model(NAME, pretrained=False, ...)`` (never downloads), and the
weights are read like any state dict (safetensors; a pickle only behind ``allow_pickle``, weights-only).
Class count, input channels and input size come from the options, else the file's metadata, else the
weights (the classifier and first convolution named by timm's ``pretrained_cfg``), else ``pretrained_cfg``.
Normalisation comes from the options, else the file's metadata, else timm's data config for the model
(``pretrained_cfg`` mean/std): the statistics the architecture's published weights were trained with.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError
from ..auditable import AuditableModel, FileMetadata, choose
from ..checkpoint import read_checkpoint
from ..weights import _strip_prefixes
from .common import FORMAT_KEY, LoadOptions, file_meta_for, finish, load_weights_strictly, package_version
from .common import require as require_module

log = logging.getLogger(__name__)


def _first(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    return str(value) if value else None


def _leading_dim(state: dict[str, torch.Tensor], key: str | None, dim: int) -> int | None:
    tensor = state.get(f"{key}.weight") if key else None
    return int(tensor.shape[dim]) if tensor is not None and tensor.dim() > dim else None


def _create(timm: Any, name: str, classes: int, shape: tuple[int, ...], default_size: tuple[int, ...]) -> nn.Module:
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": classes, "in_chans": shape[0]}
    if len(shape) == 3 and tuple(shape[1:]) != tuple(default_size[1:]):
        try:  # fixed-size architectures (ViT, Swin, ...) take the image size at construction
            return timm.create_model(name, img_size=tuple(shape[1:]), **kwargs)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
    return timm.create_model(name, **kwargs)


def load_timm(path: Path, options: LoadOptions) -> AuditableModel:
    from . import _stored_arch

    arch = options.arch or _stored_arch(path) or ""
    name = arch.split(":", 1)[1] if ":" in arch else ""
    timm = require_module("timm", "timm", f"--arch {arch}", path)
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ConfigError(
            f"--arch {arch}: timm {package_version('timm')} has no architecture {name!r}"
            + (f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else "; see timm.list_models()")
        )
    state, raw_meta = read_checkpoint(path, allow_pickle=options.allow_pickle)
    if not state:
        raise CheckpointError(f"{path}: contains no tensors")
    file_meta = FileMetadata.parse(raw_meta, path)
    cfg = timm.models.get_pretrained_cfg(name)
    default_size = tuple(int(s) for s in getattr(cfg, "input_size", (3, 224, 224)))
    flat = _strip_prefixes(dict(state), set())

    classes = choose(path, "num_classes", options.num_classes, file_meta.num_classes)
    if classes is None:
        classes = _leading_dim(flat, _first(getattr(cfg, "classifier", None)), 0)
        if classes is None:
            raise CheckpointError(f"{path}: cannot infer the class count of timm:{name}; pass --num-classes N")
        log.info("%s: inferred num_classes=%d from the classifier weights", path, classes)
    shape = choose(path, "input_shape", options.input_shape, file_meta.input_shape)
    if shape is None:
        channels = _leading_dim(flat, _first(getattr(cfg, "first_conv", None)), 1) or default_size[0]
        shape = (channels, *default_size[1:])
        log.info("%s: input shape %s from timm's pretrained_cfg (channels from the weights)", path, list(shape))
    net = _create(timm, name, int(classes), tuple(shape), default_size)
    load_weights_strictly(path, f"timm:{name}", net, state)

    mean = choose(path, "mean", options.mean, file_meta.mean)
    std = choose(path, "std", options.std, file_meta.std)
    source = "options or file metadata"
    if mean is None and std is None:
        from timm.data import resolve_model_data_config

        data_config = resolve_model_data_config(net)
        mean = tuple(float(v) for v in data_config["mean"])
        std = tuple(float(v) for v in data_config["std"])
        source = "timm pretrained_cfg"
        if len(mean) != shape[0]:
            raise CheckpointError(
                f"{path}: timm's pretrained_cfg for {name} gives {len(mean)}-channel mean/std but the model takes "
                f"{shape[0]} channels; pass --mean and --std"
            )
    extra = {FORMAT_KEY: "timm", "timm_version": package_version("timm"), "normalisation_source": source}
    meta = file_meta_for(
        path, options, file_meta, arch=f"timm:{name}", num_classes=int(classes), input_shape=shape,
        mean=mean, std=std, extra=extra,
    )  # fmt: skip
    return finish(net, meta, options.device)
