"""Random neighbourhoods: ``gaussian`` (the paper's default) and true uniform sampling in ℓ∞ / ℓ2 balls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from .base import ChunkContext, Probe, RowBatch, RowBuffer, clip, uniform_in_ball
from .keys import generator_for


class RandomProbe(Probe):
    """x' = clip(x + τ·z), z drawn by :meth:`unit_noise` with unit scale, independently of the model."""

    adversarial = False

    def unit_noise(self, count: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

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
        z = self.unit_noise(x.shape[0], tuple(x.shape[1:]), generator).to(x.device)
        return clip(x + tau * z, bounds)

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        shape = tuple(ctx.x.shape[1:])
        n, n_tau = ctx.x.shape[0], ctx.taus.shape[0]
        buffer = RowBuffer(ctx.batch_size)
        ones = torch.ones(1, dtype=torch.long, device=ctx.device)
        for i in range(n):
            for t in range(n_tau):
                if float(ctx.taus[t]) == 0.0:
                    z = torch.zeros(1, *shape, device=ctx.device)
                    weight = ones * ctx.draws
                else:
                    gen = generator_for(int(ctx.unit_seeds[i, t]), ctx.device)
                    z = self.unit_noise(ctx.draws, shape, gen)
                    weight = ones.expand(ctx.draws)
                idx = torch.full((z.shape[0],), i, dtype=torch.long, device=ctx.device)
                tau_idx = torch.full((z.shape[0],), t, dtype=torch.long, device=ctx.device)
                for batch in buffer.add(z, idx, tau_idx, weight):
                    yield self._materialise(ctx, *batch)
        for batch in buffer.flush():
            yield self._materialise(ctx, *batch)

    @staticmethod
    def _materialise(
        ctx: ChunkContext, z: torch.Tensor, idx: torch.Tensor, tau_idx: torch.Tensor, weight: torch.Tensor
    ) -> RowBatch:
        scale = ctx.taus[tau_idx].view(-1, *([1] * (z.dim() - 1)))
        return RowBatch(clip(ctx.x[idx] + scale * z, ctx.bounds), idx, tau_idx, weight)


class GaussianProbe(RandomProbe):
    """The paper's default: per-coordinate standard deviation τ, fresh draw each time, clipped.

    The paper calls it "p = 2"; its ℓ2 norm is about τ·√d, which the report states.
    """

    name = "gaussian"

    def unit_noise(self, count: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        return torch.randn(count, *shape, generator=generator, device=generator.device)

    def describe(self) -> str:
        return "Gaussian noise, per-coordinate std τ (ℓ2 norm ≈ τ·√d), clipped to the input range"


class UniformBallProbe(RandomProbe):
    """Uniform samples inside the ℓ∞ or ℓ2 ball of radius τ, clipped (clipping only moves points inward)."""

    def __init__(self, norm: Literal["linf", "l2"] = "linf") -> None:
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be linf or l2, got {norm!r}")
        self.norm = norm
        self.name = f"uniform-{norm}"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "norm": self.norm}

    def describe(self) -> str:
        return f"uniform in the {'ℓ∞' if self.norm == 'linf' else 'ℓ2'} ball of radius τ, clipped"

    def unit_noise(self, count: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        return uniform_in_ball(count, shape, self.norm, generator)
