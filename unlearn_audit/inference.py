"""Plain batched inference with output checks, shared by every component that only needs predictions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from .errors import ModelOutputError

Precision = Literal["fp32", "bf16", "fp16"]


def check_logits(logits: torch.Tensor, num_classes: int | None, name: str) -> None:
    """Raise :class:`ModelOutputError` for outputs an audit cannot use."""
    if logits.dim() != 2:
        raise ModelOutputError(
            f"{name}: model output has shape {list(logits.shape)}; expected [batch, num_classes] logits"
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ModelOutputError(
            f"{name}: model outputs {logits.shape[1]} classes but num_classes={num_classes}; check --num-classes "
            "and that every model was trained on the same label set"
        )
    if not torch.isfinite(logits).all():
        raise ModelOutputError(f"{name}: model produced NaN or infinite logits; the checkpoint is broken or diverged")


@contextmanager
def autocast_for(device: torch.device, precision: Precision) -> Iterator[None]:
    """Autocast by device type; ``fp32`` disables it."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def model_device(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 512,
    precision: Precision = "fp32",
    num_classes: int | None = None,
    name: str = "model",
) -> torch.Tensor:
    """Logits (float32, on CPU) for every row of ``x``, in eval mode."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    chunks = []
    try:
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device, non_blocking=True)
            with autocast_for(device, precision):
                out = model(batch)
            out = out.float()
            check_logits(out, num_classes, name)
            chunks.append(out.cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, num_classes or 0)


def predict(model: nn.Module, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
    """Predicted class per row (int64, CPU)."""
    return predict_logits(model, x, **kwargs).argmax(1)  # type: ignore[arg-type]
