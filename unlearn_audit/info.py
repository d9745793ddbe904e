"""``unlearn-audit info`` as a function: what a checkpoint is, and how accurate it is on a labelled set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .io.models import AuditableModel
from .io.samples import Samples
from .stats import Estimate, wilson


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str | None
    num_classes: int | None
    input_shape: tuple[int, ...] | None
    input_source: str
    parameters: int
    trainable_parameters: int
    sha256: str | None
    metadata: dict[str, Any]
    has_batchnorm: bool
    normalisation: str
    #: the form the model arrived in: safetensors, pickle (--allow-pickle), pt2, onnx, timm, hf, or in-memory
    model_format: str = "in-memory"
    data: str | None = None
    data_sha256: str | None = None
    samples: int | None = None
    accuracy: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "accuracy"}
        out["input_shape"] = list(self.input_shape) if self.input_shape else None
        out["accuracy"] = self.accuracy.to_dict() if self.accuracy else None
        return out


def model_info(model: AuditableModel, data: Samples | None = None, *, batch_size: int = 512) -> ModelInfo:
    """Describe ``model``; with ``data``, add its accuracy and a 95 % Wilson interval.

    ``data`` is first fitted to the model (greyscale ↔ RGB, :func:`~unlearn_audit.io.shapes.fit_samples`). When
    the model's input shape is not stated, it is inferred from the first layer that reads the input, with height
    and width taken from ``data``."""
    from torch import nn

    from .inference import predict
    from .io.formats.onnx_models import recheck_on_samples
    from .io.shapes import announce_input, expected_input, fit_samples

    if data is not None:
        data = fit_samples(data, model)
        # a model converted from ONNX is re-checked against onnxruntime on the data it is scored on
        on = f"the data ({len(data)} samples, content sha256 {data.content_sha256[:12]})"
        model = recheck_on_samples(model, data.x, on)
    params = sum(p.numel() for p in model.net.parameters())
    trainable = sum(p.numel() for p in model.net.parameters() if p.requires_grad)
    meta = model.meta
    norm = "none (inputs used as given)"
    if meta.mean is not None and meta.std is not None:
        norm = f"inside the model: mean={list(meta.mean)} std={list(meta.std)}"
    accuracy = None
    input_shape = meta.input_shape
    spec = expected_input(model)
    if input_shape is None and data is not None and spec.inferred:
        input_shape = data.input_shape
    announce_input(model, spec)
    input_source = spec.source + ("; height and width from the data" if input_shape != meta.input_shape else "")
    if data is not None:
        preds = predict(model, data.x, batch_size=batch_size, num_classes=meta.num_classes, name=meta.name)
        correct = int((preds == data.y).sum())
        accuracy = wilson(correct, len(data))
    return ModelInfo(
        name=meta.name,
        arch=meta.arch,
        num_classes=meta.num_classes,
        input_shape=input_shape,
        input_source=input_source,
        parameters=params,
        trainable_parameters=trainable,
        sha256=meta.sha256,
        metadata=dict(meta.extra),
        has_batchnorm=any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()),
        normalisation=norm,
        model_format=_model_format(model),
        data=data.source if data is not None else None,
        data_sha256=data.sha256 if data is not None else None,
        samples=len(data) if data is not None else None,
        accuracy=accuracy,
    )


def _model_format(model: AuditableModel) -> str:
    """The form ``model`` arrived in: the loader's record for models without their code, else the checkpoint's
    kind from its first bytes."""
    from pathlib import Path

    from .io.checkpoint import sniff_format
    from .io.formats import FORMAT_KEY

    recorded = model.meta.extra.get(FORMAT_KEY)
    if recorded:
        return str(recorded)
    path = Path(model.meta.path) if model.meta.path else None
    if path is None or not path.is_file():
        return "in-memory"
    kind = sniff_format(path)
    return "pickle" if kind in ("zip", "pickle") else kind
