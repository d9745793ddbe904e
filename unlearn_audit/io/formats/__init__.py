"""Models that arrive without their Python code: torch.export programs (``.pt2``), ONNX files, timm
checkpoints (``--arch timm:NAME``) and Hugging Face image classifiers (a folder, or ``--arch hf:DIR``).

:func:`load_model` in :mod:`unlearn_audit.io.models` asks :func:`model_format` first; when it names one of these
forms, :func:`load_foreign_model` loads it into the same :class:`~unlearn_audit.io.models.AuditableModel`
(network + normalisation + metadata, eval mode, autograd with respect to the input). docs/model-formats.md has
the table of accepted forms and what each needs installed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from ...errors import CheckpointError, ConfigError
from ..auditable import AuditableModel
from .common import FORMAT_KEY, LoadOptions

ModelFormat = Literal["pt2", "onnx", "timm", "hf"]
log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_KEY",
    "PROGRAM_FORMATS",
    "LoadOptions",
    "ModelFormat",
    "load_foreign_model",
    "model_format",
    "refuse_fixed_program",
]

#: Forms whose network is a fixed eval-mode program rather than a module built from code: they run, and give
#: gradients with respect to the input, but cannot train as their source did (BatchNorm and dropout are frozen in
#: eval mode) and weights saved from them cannot be loaded back (no code rebuilds the network from a state dict).
PROGRAM_FORMATS: dict[str, str] = {"pt2": "a torch.export .pt2 program", "onnx": "an ONNX model"}


def refuse_fixed_program(kind: str | None, where: str | Path, action: str) -> None:
    """Refuse to fine-tune or save a ``.pt2``/ONNX model, in one line that says what to do instead."""
    if kind not in PROGRAM_FORMATS:
        return
    raise ConfigError(
        f"{where}: {action} needs a model whose trained weights can be saved and loaded back, but {PROGRAM_FORMATS[kind]} "
        "is a fixed eval-mode graph that no code rebuilds from weights; run it on the source model (.safetensors "
        "with --arch, timm:NAME or a Hugging Face folder) and export the result again, or audit this file with check"
    )


def model_format(path: str | Path, arch: str | None) -> ModelFormat | None:
    """Which loader handles ``path``: by ``arch`` prefix, folder, suffix or content; None for a state dict."""
    path = Path(path)
    if arch is not None and arch.startswith("timm:"):
        return "timm"
    if arch is not None and arch.startswith("hf:"):
        return "hf"
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".pt2":
        return "pt2"
    if path.is_file() and arch is None:
        from .pt2_safety import is_pt2_archive

        if is_pt2_archive(path):
            return "pt2"
        stored = _stored_arch(path)
        if stored is not None and stored.startswith("timm:"):
            return "timm"
        if stored is not None and stored.startswith("hf:"):
            return "hf"
    return None


def _stored_arch(path: Path) -> str | None:
    """The ``arch`` in a safetensors header (a model saved by this toolkit from a timm/HF model)."""
    from ..checkpoint import read_safetensors_header, sniff_format

    try:
        if sniff_format(path) != "safetensors":
            return None
        _, metadata = read_safetensors_header(path)
    except (OSError, CheckpointError):
        return None  # the state-dict loader reports the problem with the usual message
    return metadata.get("arch")


def load_foreign_model(kind: ModelFormat, path: str | Path, options: LoadOptions) -> AuditableModel:
    path = Path(path)
    if kind != "hf" and not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if kind in ("pt2", "onnx") and options.arch:
        log.warning("%s: --arch %s is ignored; a %s file carries its own architecture", path, options.arch, kind)
    if kind == "pt2":
        from .exported import load_pt2

        return load_pt2(path, options)
    if kind == "onnx":
        from .onnx_models import load_onnx

        return load_onnx(path, options)
    if kind == "timm":
        from .timm_models import load_timm

        return load_timm(path, options)
    from .huggingface import load_hf

    return load_hf(path, options)
