"""A tensor-like, read-only view of rows of a large on-disk array, converted to float32 only when indexed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .images import convert_channels


class LazyRows:
    """Tensor-like, read-only view of ``rows`` of a uint8/float array, converted to float32 in [0, 1] on access.

    Supports what the audit needs from ``Samples.x``: ``shape``, ``dim()``, ``len()`` and indexing with a
    slice, an int, or an index array/tensor, each returning a real ``torch.Tensor``. ``x[:]`` materialises.
    Used for large dataset-backed sets so that memory does not grow with the forget set (issue: streaming).
    ``channels`` converts image rows greyscale ↔ RGB on access (see :mod:`unlearn_audit.io.images`).
    """

    dtype = torch.float32

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None, channels: int | None = None) -> None:
        self._array = array
        self._rows = np.arange(array.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        self._channels = channels if channels is not None and array.ndim == 4 and channels != array.shape[1] else None

    @property
    def shape(self) -> torch.Size:
        inner = tuple(self._array.shape[1:])
        if self._channels is not None:
            inner = (self._channels, *inner[1:])
        return torch.Size((len(self._rows), *inner))

    def dim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self._rows)

    def _convert(self, block: np.ndarray) -> torch.Tensor:
        eight_bit = block.dtype == np.uint8
        if eight_bit:
            out = torch.from_numpy(block.astype(np.float32) / 255.0)
        else:
            out = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        if self._channels is not None:
            out = convert_channels(out, self._channels, eight_bit or None)
        return out

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        picked = self._rows[index]
        if np.ndim(picked) == 0:
            return self._convert(self._array[int(picked)][None])[0]
        return self._convert(self._array[picked])

    def subset(self, indices: np.ndarray) -> LazyRows:
        return LazyRows(self._array, self._rows[np.asarray(indices, dtype=np.int64)], self._channels)

    def with_channels(self, channels: int) -> LazyRows:
        """The same rows, converted to ``channels`` on access."""
        return LazyRows(self._array, self._rows, channels)

    def chunks(self, size: int = 4096) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), size):
            yield self[start : start + size]
