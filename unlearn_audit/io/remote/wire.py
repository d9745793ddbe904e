"""Rows to the bytes that are sent and hashed, the answer key, and the reading of scores as logits or probabilities.

Pure functions of the endpoint's tensor specs: :func:`to_wire` turns data-domain rows into the input's wire
datatype (little-endian, C order), which are exactly the bytes :func:`answer_key_prefix` plus the row hash into
an answer key; :func:`looks_like_probabilities` is the test ``output=auto`` settles on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from .protocol import FLOAT_TYPES, TensorSpec

KEY_VERSION = "oip-answer-v1"
PROBABILITY_SUM_TOLERANCE = {"FP16": 1e-2, "FP32": 1e-3, "FP64": 1e-3}


def shape_text(shape: Sequence[int]) -> str:
    """``[*, 1, 28, 28]``: a tensor shape as the metadata gives it, ``-1`` (variable) shown as ``*``."""
    return "[" + ", ".join("*" if s == -1 else str(s) for s in shape) + "]"


def to_wire(
    x: torch.Tensor | np.ndarray,
    spec: TensorSpec,
    row_shape: tuple[int, ...],
    *,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    where: str,
) -> np.ndarray:
    """Rows in the input's wire datatype (little-endian, C order): exactly the bytes that are hashed."""
    tensor = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise InputError(f"{where}: inputs must be a floating-point tensor in the data domain")
    tensor = tensor.detach().to("cpu")
    got = tuple(tensor.shape[1:])
    if (
        tensor.dim() < 1
        or len(got) != len(row_shape)
        or any(r not in (-1, g) for r, g in zip(row_shape, got, strict=True))
    ):
        raise InputError(
            f"{where}: input {spec.name!r} takes rows of shape {shape_text(row_shape)}, got {list(got)}; check "
            "the sample set (or input_shape)"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise InputError(f"{where}: inputs contain NaN or infinite values")
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean, dtype=torch.float32)
        std_t = torch.tensor(std, dtype=torch.float32)
        view = [1, -1] + [1] * (tensor.dim() - 2) if mean_t.numel() > 1 else [1] * tensor.dim()
        tensor = (tensor.float() - mean_t.view(view)) / std_t.view(view)
    if spec.datatype == "UINT8":
        array = (tensor.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    elif spec.datatype == "FP16":
        array = tensor.half().numpy()
    elif spec.datatype == "FP64":
        array = tensor.double().numpy()
    else:
        array = tensor.float().numpy()
    wire_dtype = FLOAT_TYPES.get(spec.datatype, np.dtype("u1"))
    return np.ascontiguousarray(array, dtype=wire_dtype)


def answer_key_prefix(
    url: str, metadata_sha256: str, spec: TensorSpec, row_shape: tuple[int, ...], output_name: str | None
) -> Any:
    """The hash state every answer key of this endpoint starts from; ``copy()`` it and add a row's bytes."""
    header = [KEY_VERSION, url, metadata_sha256, spec.name, spec.datatype, list(row_shape), output_name]
    return hashlib.sha256(json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\0")


def looks_like_probabilities(scores: np.ndarray, datatype: str) -> tuple[bool, float]:
    """Whether every row lies in [0, 1] and sums to 1 (within the datatype's tolerance), and the worst row
    sum's distance from 1."""
    tolerance = PROBABILITY_SUM_TOLERANCE.get(datatype, 1e-3)
    values = scores.astype(np.float64)
    worst = float(np.abs(values.sum(axis=1) - 1.0).max())
    looks = bool((values >= -tolerance).all() and (values <= 1 + tolerance).all() and worst <= tolerance)
    return looks, worst
