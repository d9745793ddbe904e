"""Loading and saving models from strangers.

An :class:`AuditableModel` is the network plus its input normalisation: callers always pass inputs in the
data domain (pixels in [0, 1], or standardised features), so every probe radius τ is measured there.

Metadata keys written into (and read from) the safetensors header, all strings:

=================  =====================================================================
``arch``           registry name, torchvision name, or ``file.py:factory``
``num_classes``    integer
``input_shape``    JSON list, e.g. ``[1, 28, 28]`` or ``[64]``
``mean``, ``std``  JSON lists (per channel or per feature); absent means no normalisation
``class_names``    optional JSON list of strings
``created_by``     ``unlearn-audit <version>``
``method``         how the model was produced (``train``, ``retrain``, ``gd``, ``rurk`` ...)
``hparams``        JSON object of that method's hyper-parameters
``parent_sha256``  sha256 of the checkpoint the method started from
``seed``           integer seed of the producing run
=================  =====================================================================

Other keys are kept verbatim in :attr:`ModelMeta.extra`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device
from ..errors import CheckpointError, ConfigError
from .architectures import build_architecture, default_input_shape
from .auditable import (
    KNOWN_METADATA_KEYS,
    AuditableModel,
    FileMetadata,
    ModelMeta,
    _parse_floats,
    choose,
    distinct_names,
    parse_shape,
    wrap_model,
)
from .checkpoint import read_checkpoint, write_safetensors
from .first_layer import file_channels
from .hashing import sha256_file
from .weights import STRIPPABLE_PREFIXES, _fits, _strip_prefixes, diagnose_mismatch

__all__ = [  # the container and the weight-fitting helpers live in .auditable and .weights; imported from here too
    "KNOWN_METADATA_KEYS",
    "STRIPPABLE_PREFIXES",
    "AuditableModel",
    "ModelMeta",
    "diagnose_mismatch",
    "distinct_names",
    "load_model",
    "model_metadata",
    "parse_shape",
    "save_model",
    "wrap_model",
]

log = logging.getLogger(__name__)


def _infer_num_classes(arch: str, input_shape: tuple[int, ...] | None, state: dict[str, torch.Tensor]) -> int | None:
    """Build the architecture with 3 and with 5 classes; tensors whose first dimension follows are the head."""
    try:
        probe3 = build_architecture(arch, 3, input_shape).state_dict()
        probe5 = build_architecture(arch, 5, input_shape).state_dict()
    except Exception:
        return None
    guesses = set()
    for key, tensor in probe3.items():
        other = probe5.get(key)
        if other is None or tensor.dim() == 0 or key not in state or state[key].dim() == 0:
            continue
        if tensor.shape[0] == 3 and other.shape[0] == 5:
            guesses.add(int(state[key].shape[0]))
    return guesses.pop() if len(guesses) == 1 else None


def load_model(
    path: str | Path,
    arch: str | None = None,
    num_classes: int | None = None,
    *,
    input_shape: Sequence[int] | str | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    device: str | torch.device = "auto",
    allow_pickle: bool = False,
    name: str | None = None,
) -> AuditableModel:
    """Load a checkpoint into an :class:`AuditableModel` in eval mode on ``device``.

    ``path`` may also be a torch.export ``.pt2``, an ``.onnx`` file, a Hugging Face folder, or weights for
    ``arch="timm:NAME"``/``"hf:DIR"`` (see io/formats/ and docs/model-formats.md).

    Explicit arguments win over the file's metadata (a warning is logged when they disagree). Loading is
    strict; a mismatch raises :class:`CheckpointError` with a one-line diagnosis and a hint.
    """
    path = Path(path)
    # --- models without their code: .pt2, .onnx, a Hugging Face folder, --arch timm:NAME / hf:DIR (io/formats/) ---
    from .formats import LoadOptions, load_foreign_model, model_format

    foreign = model_format(path, arch)
    if foreign is not None:
        options = LoadOptions.parse(
            arch=arch, num_classes=num_classes, input_shape=input_shape, mean=mean, std=std,
            device=device, allow_pickle=allow_pickle, name=name,
        )  # fmt: skip
        return load_foreign_model(foreign, path, options)
    # --- a state dict (safetensors, or a weights-only pickle behind allow_pickle) ---
    state, meta = read_checkpoint(path, allow_pickle=allow_pickle)
    if not state:
        raise CheckpointError(f"{path}: contains no tensors")

    file_meta = FileMetadata.parse(meta, path)
    arch = choose(path, "arch", arch, meta.get("arch"))
    if not arch:
        raise CheckpointError(
            f"{path}: no 'arch' in the file's metadata; pass --arch NAME (mlp, small-cnn, resnet18-cifar, a "
            "torchvision name) or --arch file.py:factory"
        )
    given_shape = parse_shape(input_shape)
    shape = choose(path, "input_shape", given_shape, file_meta.input_shape)
    shape_source = "--input-shape" if given_shape is not None else "the file's metadata"
    if shape is None and (arch == "mlp" or arch.startswith("mlp-")):
        first = state.get("layers.1.weight")
        if first is not None and first.dim() == 2:
            shape, shape_source = (int(first.shape[1]),), "inferred from layers.1.weight"
    if shape is None:
        shape, shape_source = default_input_shape(arch), f"the default of --arch {arch}"
    mean_v = choose(path, "mean", _parse_floats(mean, "mean"), file_meta.mean)
    std_v = choose(path, "std", _parse_floats(std, "std"), file_meta.std)
    classes = choose(path, "num_classes", num_classes, file_meta.num_classes)

    first_pass = _strip_prefixes(dict(state), set())
    if classes is None:
        classes = _infer_num_classes(arch, shape, first_pass)
        if classes is None:
            raise CheckpointError(
                f"{path}: no 'num_classes' in the metadata and it cannot be inferred for --arch {arch}; "
                "pass --num-classes N"
            )
        log.info("%s: inferred num_classes=%d from the classifier weights", path, classes)
    net = build_architecture(arch, int(classes), shape)
    expected = net.state_dict()
    state = _strip_prefixes(dict(state), set(expected))
    if not _fits(state, expected) and shape is not None and shape_source.startswith("the default"):
        fixed = file_channels(net, state, shape)
        if fixed is not None:  # e.g. a greyscale torchvision ResNet: the default says 3 channels, the file 1
            channels, evidence = fixed
            shape = (channels, *shape[1:])
            shape_source = f"channels inferred from the file's {evidence}, height and width {shape_source}"
            net = build_architecture(arch, int(classes), shape)
            expected = net.state_dict()
    if not _fits(state, expected):
        raise CheckpointError(diagnose_mismatch(path, arch, state, expected))
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    model = AuditableModel(
        net,
        ModelMeta(
            name=name or path.stem,
            arch=arch,
            num_classes=int(classes),
            input_shape=shape,
            input_shape_source=shape_source if shape is not None else None,
            mean=mean_v,
            std=std_v,
            class_names=file_meta.class_names,
            path=str(path),
            sha256=sha256_file(path),
            extra=dict(file_meta.extra or {}),
        ),
    )
    return model.eval().to(resolve_device(device))


def model_metadata(
    model: AuditableModel, **extra: str | int | float | Mapping[str, Any] | Sequence[Any] | None
) -> dict[str, str]:
    """The safetensors header metadata for ``model``; ``extra`` values that are not strings become JSON."""
    meta = model.meta
    out: dict[str, str] = {"format": "pt", "created_by": f"unlearn-audit {_version()}"}
    if meta.arch:
        out["arch"] = meta.arch
    if meta.num_classes is not None:
        out["num_classes"] = str(meta.num_classes)
    if meta.input_shape is not None:
        out["input_shape"] = json.dumps(list(meta.input_shape))
    if meta.mean is not None and meta.std is not None:
        out["mean"] = json.dumps(list(meta.mean))
        out["std"] = json.dumps(list(meta.std))
    if meta.class_names:
        out["class_names"] = json.dumps(list(meta.class_names))
    for key, value in {**dict(meta.extra), **extra}.items():
        if value is None or key in ("format", "created_by"):
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def save_model(
    model: AuditableModel, path: str | Path, **extra: str | int | float | Mapping[str, Any] | Sequence[Any] | None
) -> str:
    """Write the inner network's state dict as safetensors with full metadata; return the file's sha256."""
    if not isinstance(model, AuditableModel):
        raise ConfigError("save_model expects an AuditableModel; wrap a plain module with wrap_model(...) first")
    from .formats import FORMAT_KEY, refuse_fixed_program

    refuse_fixed_program(model.meta.extra.get(FORMAT_KEY), model.meta.path or model.meta.name, "save_model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.net.state_dict().items()}
    write_safetensors(path, tensors, model_metadata(model, **extra))
    return sha256_file(path)


def _version() -> str:
    from ..version import __version__

    return __version__
