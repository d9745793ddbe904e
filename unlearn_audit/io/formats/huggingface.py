"""Hugging Face ``transformers`` image classifiers: a folder (``config.json`` + weights + the image processor's
``preprocessor_config.json``), or ``--arch hf:DIR`` naming the folder whose config to use for a weights file.

Offline and without custom code: ``config.json`` is read here and refused if it names custom code
(``auto_map``, ``trust_remote_code``); the config class comes from transformers' own registry by
``model_type``; the weights are read by this package's checked safetensors reader (shards must stay in the
folder; pickles only behind ``allow_pickle``, weights-only) and handed to ``from_pretrained(None,
state_dict=..., local_files_only=True)`` so transformers applies its own key conversions. Nothing is fetched
from the Hub (``HF_HUB_OFFLINE=1`` is set before transformers is imported). The model returns logits only.

Normalisation is the image processor's: inputs in [0, 1] are pixels/255, and a processor computes
``(pixels * rescale_factor - image_mean) / image_std``, so the wrapper uses
``mean' = image_mean / (255 * rescale_factor)`` and ``std' = image_std / (255 * rescale_factor)``
(``rescale_factor`` = 1 when ``do_rescale`` is false; no mean/std when ``do_normalize`` is false).
Resizing and cropping are not applied: samples must already have the model's input size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError
from ..auditable import AuditableModel, ModelMeta, choose
from ..checkpoint import read_checkpoint
from ..hashing import sha256_file
from ..weights import _short_list
from .common import FORMAT_KEY, LoadOptions, finish, package_version, require

log = logging.getLogger(__name__)

CUSTOM_CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class ImageClassifierLogits(nn.Module):
    """A transformers image classifier as ``x -> logits`` (its other outputs are dropped)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


def _json_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def _refuse_custom_code(path: Path, config: dict[str, Any]) -> None:
    for key in CUSTOM_CODE_KEYS:
        if key in config:
            raise CheckpointError(
                f"{path}: names custom code ({key}); unlearn-audit loads only architectures built into transformers "
                "and never runs code shipped with a model"
            )


def _folder_weights(folder: Path, allow_pickle: bool) -> tuple[dict[str, torch.Tensor], str, list[Path]]:
    """State dict, sha256 and files of the weights in ``folder`` (single file or safetensors shards)."""
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    pickled = folder / "pytorch_model.bin"
    if single.is_file():
        files = [single]
    elif index.is_file():
        weight_map = _json_file(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index}: no 'weight_map'")
        names = sorted(set(map(str, weight_map.values())))
        for name in names:
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise CheckpointError(f"{index}: shard {name!r} is not a file in the model's folder")
        files = [folder / name for name in names]
    elif pickled.is_file():
        files = [pickled]
    else:
        raise CheckpointError(f"{folder}: no weights ({', '.join(WEIGHT_FILES)})")
    state: dict[str, torch.Tensor] = {}
    digest = hashlib.sha256()
    for file in files:
        tensors, _ = read_checkpoint(file, allow_pickle=allow_pickle)
        state.update(tensors)
        digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    sha = sha256_file(files[0]) if len(files) == 1 else digest.hexdigest()
    return state, sha, files


def _processor_normalisation(
    path: Path, processor: dict[str, Any], channels: int
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    rescale = float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 1.0
    scale = 255.0 * rescale  # a model input is (pixels * rescale - mean) / std with pixels = 255 * x
    if not processor.get("do_normalize", True):
        return (None, None) if abs(scale - 1.0) < 1e-9 else ((0.0,), (1.0 / scale,))
    mean, std = processor.get("image_mean"), processor.get("image_std")
    if mean is None or std is None:
        raise CheckpointError(f"{path}: do_normalize without image_mean/image_std; pass --mean and --std")
    mean = [mean] if isinstance(mean, int | float) else list(mean)
    std = [std] if isinstance(std, int | float) else list(std)
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise CheckpointError(
            f"{path}: image_mean/image_std have {len(mean)}/{len(std)} values but the model takes {channels} channels"
        )
    return tuple(float(m) / scale for m in mean), tuple(float(s) / scale for s in std)


def _size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    return None


def _input_shape(config: Any, processor: dict[str, Any]) -> tuple[int, ...] | None:
    channels = int(getattr(config, "num_channels", 3) or 3)
    size = _size(processor.get("crop_size")) if processor.get("do_center_crop") else None
    size = size or _size(processor.get("size")) or _size(getattr(config, "image_size", None))
    return (channels, *size) if size else None


@contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """transformers prints a load report and progress bars; the library logs instead."""
    logging_utils = transformers.utils.logging
    verbosity = logging_utils.get_verbosity()
    bars = logging_utils.is_progress_bar_enabled()
    logging_utils.set_verbosity_error()
    logging_utils.disable_progress_bar()
    try:
        yield
    finally:
        logging_utils.set_verbosity(verbosity)
        if bars:
            logging_utils.enable_progress_bar()


def load_hf(path: Path, options: LoadOptions) -> AuditableModel:
    from . import _stored_arch

    arch = options.arch or (_stored_arch(path) if path.is_file() else None) or ""
    config_dir = Path(arch[3:]) if arch.startswith("hf:") else path
    if not config_dir.is_dir():
        raise CheckpointError(f"{config_dir}: no such folder (a Hugging Face model folder with config.json)")
    config_path = config_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_dir}: no config.json; not a Hugging Face model folder")
    raw_config = _json_file(config_path)
    _refuse_custom_code(config_path, raw_config)
    processor_path = config_dir / "preprocessor_config.json"
    processor = _json_file(processor_path) if processor_path.is_file() else None
    if processor is not None:
        _refuse_custom_code(processor_path, processor)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = require("transformers", "hf", "loading a Hugging Face model", path)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING

    model_type = str(raw_config.get("model_type"))
    if model_type not in CONFIG_MAPPING:
        raise CheckpointError(
            f"{config_path}: model_type {model_type!r} is not built into transformers "
            f"{package_version('transformers')} (custom code is never run)"
        )
    config: Any
    model_class: Any
    try:
        config = CONFIG_MAPPING[model_type].from_dict(raw_config)
        model_class = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError as exc:
        raise CheckpointError(
            f"{config_path}: model_type {model_type!r} has no image-classification model in transformers "
            f"{package_version('transformers')}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a config class rejecting a value
        raise CheckpointError(f"{config_path}: invalid {model_type} config ({type(exc).__name__}: {exc})") from exc
    if path.is_dir():
        state, sha, files = _folder_weights(path, options.allow_pickle)
    elif path.is_file():
        state, _ = read_checkpoint(path, allow_pickle=options.allow_pickle)
        sha, files = sha256_file(path), [path]
        if state and all(k.startswith("model.") for k in state):  # saved by save_model from ImageClassifierLogits
            state = {k[len("model.") :]: v for k, v in state.items()}
    else:
        raise CheckpointError(f"{path}: no such file or folder")

    classes = choose(path, "num_classes", options.num_classes, int(config.num_labels), "config.json's num_labels")
    if classes != config.num_labels:
        raise ConfigError(f"--num-classes {classes} but {config_path} has num_labels={config.num_labels}")
    try:
        with _quiet_transformers(transformers):
            model, info = model_class.from_pretrained(
                None, config=config, state_dict=state, local_files_only=True, output_loading_info=True,
                dtype=torch.float32, trust_remote_code=False,
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - transformers raises RuntimeError/ValueError/OSError
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"{path}: weights do not fit {model_class.__name__} from {config_path} ({type(exc).__name__}: "
            f"{first[:200]})"
        ) from exc
    problems = [
        f"{len(keys)} {kind} ({_short_list(sorted(map(str, keys)))})"
        for kind, keys in (
            ("missing", info.get("missing_keys")),
            ("unexpected", info.get("unexpected_keys")),
            ("shape mismatch(es)", info.get("mismatched_keys")),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"{path}: weights do not fit {model_class.__name__}: {'; '.join(problems)}")

    program_shape = _input_shape(config, processor or {})
    shape = choose(path, "input_shape", options.input_shape, program_shape, "the model's config")
    if shape is None:
        raise CheckpointError(f"{config_dir}: the input size is not in the configs; pass --input-shape")
    if options.mean is not None or options.std is not None:
        mean, std, source = options.mean, options.std, "options"
    elif processor is not None:
        mean, std = _processor_normalisation(processor_path, processor, int(shape[0]))
        source = "preprocessor_config.json"
    else:
        raise CheckpointError(
            f"{config_dir}: no preprocessor_config.json, so the model's input normalisation is unknown; pass --mean "
            "and --std (or add the image processor's config)"
        )
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label.get(i, "")) for i in range(int(classes))]
    default_names = all(n == f"LABEL_{i}" for i, n in enumerate(names))
    extra = {
        FORMAT_KEY: "hf",
        "transformers_version": package_version("transformers"),
        "hf_class": model_class.__name__,
        "config_sha256": sha256_file(config_path),
        "normalisation_source": source,
        "weight_files": ",".join(f.name for f in files),
    }
    if processor is not None:
        extra["preprocessor_sha256"] = sha256_file(processor_path)
    meta = ModelMeta(
        name=options.name or (path.name if path.is_dir() else path.stem),
        arch=f"hf:{config_dir}",
        num_classes=int(classes),
        input_shape=tuple(shape),
        mean=mean,
        std=std,
        class_names=None if default_names or not all(names) else tuple(names),
        path=str(path),
        sha256=sha,
        extra=extra,
    )
    return finish(ImageClassifierLogits(model), meta, options.device)
