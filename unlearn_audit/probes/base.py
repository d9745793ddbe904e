"""The probe interface: a neighbourhood ``B(x, τ)`` of a forget sample (SPEC §2).

A probe has two faces:

* ``perturb(model, x, y, tau, generator)``: the plain, obvious version, one draw per row for a single τ.
  It reads like the paper, is used by remediation (RURK) and is the slow reference the fused engine is
  tested against.
* ``rows(ctx, chunk)``: the fused version the engine uses. It yields batches of perturbed inputs for every
  (sample, τ, draw) of a chunk of samples, each row with an integer weight (how many draws it stands for).
  Rows for τ = 0 are the clean input with weight = draws.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class RowBatch:
    """Perturbed inputs and where each row's outcome is counted."""

    x: torch.Tensor  # [B, *input_shape] on the engine device
    sample: torch.Tensor  # [B] int64, index within the chunk
    tau: torch.Tensor  # [B] int64, index into the τ grid
    weight: torch.Tensor  # [B] int64, number of draws this row stands for


@dataclass
class ChunkContext:
    """What a probe needs to produce the rows for one chunk of samples."""

    x: torch.Tensor  # [n, *shape] on device
    y: torch.Tensor  # [n] int64 on device
    taus: torch.Tensor  # [T] float32 on device
    unit_seeds: Any  # numpy int64 [n, T]
    draws: int
    num_classes: int
    bounds: tuple[float, float] | None
    batch_size: int
    device: torch.device
    crafting_model: nn.Module | None = None
    autocast: Callable[[], Any] = field(default=lambda: _null())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def clip(x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def random_targets(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from ``y``, per row (the paper's targeted probes)."""
    offset = torch.randint(0, num_classes - 1, y.shape, generator=generator, device=generator.device)
    offset = offset.to(y.device)
    return torch.where(offset >= y, offset + 1, offset)


def uniform_in_ball(count: int, shape: tuple[int, ...], norm: str, generator: torch.Generator) -> torch.Tensor:
    """``count`` points drawn uniformly from the unit ``norm`` ball (``linf`` or ``l2``), on the generator's device.

    The uniform probes' noise and PGD's random start."""
    device = generator.device
    if norm == "linf":
        return torch.rand(count, *shape, generator=generator, device=device) * 2.0 - 1.0
    d = math.prod(shape)
    direction = torch.randn(count, d, generator=generator, device=device)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(count, 1, generator=generator, device=device) ** (1.0 / d)
    return (direction * radius).view(count, *shape)


class Probe(ABC):
    """A neighbourhood of forget samples. Subclasses are small and read like the paper."""

    name: str = ""
    adversarial: ClassVar[bool] = False
    query_based: ClassVar[bool] = False  # crafted from the answers of the model it attacks, not its gradients
    crafts_in_autocast: ClassVar[bool] = False  # its crafting passes run in ChunkContext.autocast (--craft-precision)
    engines: ClassVar[tuple[str, ...]] = ("fused", "art")  # the engines that can run this probe

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def describe(self) -> str:
        return self.name

    @abstractmethod
    def perturb(
        self,
        model: nn.Module | None,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float,
        generator: torch.Generator,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        num_classes: int | None = None,
    ) -> torch.Tensor:
        """One perturbed copy of every row of ``x`` at radius ``tau``."""

    @abstractmethod
    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        """Every (sample, τ, draw) row of a chunk, in batches of at most ``ctx.batch_size`` rows."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class RowBuffer:
    """Collects unit outputs and emits batches of exactly ``size`` rows (the last one may be shorter)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: list[tuple[torch.Tensor, ...]] = []
        self.count = 0

    def add(self, *columns: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        self.parts.append(columns)
        self.count += columns[0].shape[0]
        while self.count >= self.size:
            yield self._take(self.size)

    def flush(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.count:
            yield self._take(self.count)

    def _take(self, n: int) -> tuple[torch.Tensor, ...]:
        merged = [torch.cat(cols) if len(cols) > 1 else cols[0] for cols in zip(*self.parts, strict=True)]
        head = tuple(col[:n] for col in merged)
        rest = tuple(col[n:] for col in merged)
        self.count -= n
        self.parts = [rest] if self.count else []
        return head
