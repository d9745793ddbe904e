"""sha256 of files and of in-memory tensors, for provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tensors(*arrays: torch.Tensor | np.ndarray) -> str:
    """Hash the exact bytes, shapes and dtypes of tensors (e.g. a forget set already in memory)."""
    digest = hashlib.sha256()
    for array in arrays:
        value = (
            array.detach().cpu().contiguous().numpy()
            if isinstance(array, torch.Tensor)
            else np.ascontiguousarray(array)
        )
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def sha256_state_dict(module: torch.nn.Module) -> str:
    """Content hash of a module's parameters and buffers, in key order (for models passed in memory)."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
