"""The :class:`Samples` container, on its own so that the readers (:mod:`.samples`) and the fitting to a model's
input (:mod:`.shapes`) can both name it without importing each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from ..errors import InputError
from .hashing import sha256_tensors
from .lazy import LazyRows

__all__ = ["Domain", "Samples"]

Domain = Literal["image", "tabular"]


@dataclass(frozen=True)
class Samples:
    """A labelled set of inputs. ``bounds`` is the valid input range probes clip to (None: no clipping)."""

    x: torch.Tensor  # or a LazyRows view for large dataset-backed sets (index it to get tensors)
    y: torch.Tensor
    ids: tuple[str, ...]
    domain: Domain = "image"
    bounds: tuple[float, float] | None = (0.0, 1.0)
    source: str = "<memory>"
    sha256: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0] or self.y.shape[0] != len(self.ids):
            raise InputError(
                f"{self.source}: {self.x.shape[0]} inputs, {self.y.shape[0]} labels and {len(self.ids)} ids; "
                "they must have the same length"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.x, LazyRows)

    @property
    def content_sha256(self) -> str:
        if isinstance(self.x, LazyRows):
            import hashlib

            digest = hashlib.sha256(f"float32{tuple(self.x.shape)}".encode())
            for block in self.x.chunks():
                digest.update(block.numpy().tobytes())
            return digest.hexdigest() + ":" + sha256_tensors(self.y)[:16]
        return sha256_tensors(self.x, self.y)

    def materialise(self) -> Samples:
        """The same set with ``x`` as an in-memory tensor."""
        return replace(self, x=self.x[:]) if isinstance(self.x, LazyRows) else self

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor, source: str | None = None) -> Samples:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return replace(
            self,
            x=self.x.subset(idx.numpy()) if isinstance(self.x, LazyRows) else self.x[idx],  # type: ignore[arg-type]
            y=self.y[idx],
            ids=tuple(self.ids[int(i)] for i in idx),
            source=source or f"{self.source}[subset]",
            sha256=None,
        )

    def classes(self) -> list[int]:
        return sorted(int(c) for c in torch.unique(self.y))
