"""Adversarial neighbourhoods, crafted white-box on the audited model (SPEC §2).

* ``fgsm``: one signed-gradient step of size τ. Paper default: *targeted* at a random y' ≠ y, a fresh y' per
  draw; ``targeted=False`` ascends the true-label loss instead.
* ``pgd``: ``steps`` projected steps (ℓ∞ signed steps or ℓ2 normalised steps) of size ``step_size`` (absolute,
  default 2/255, or ``"tau/4"``), random start in the ball, targeted at a random y' ≠ y per draw by default.

Fusion used by the engine (exact, not an approximation):

* FGSM's gradient sign at x does not depend on τ. A (sample, target) pair needs one forward/backward,
  whatever the number of τ values and draws; the draws only decide how many times each target is used.
* PGD runs one forward/backward per step for a whole batch of (sample, τ, draw) rows, each row with its own
  radius, step size, target and random start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ChunkContext, Probe, RowBatch, RowBuffer, clip, random_targets, uniform_in_ball
from .keys import generator_for

DEFAULT_PGD_STEP = 2.0 / 255.0


def input_gradient(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, autocast: Any | None = None
) -> torch.Tensor:
    """∇_x of the summed cross-entropy, without computing parameter gradients."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if autocast is not None:
            with autocast():
                logits = model(x)
        else:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class FGSMProbe(Probe):
    name = "fgsm"
    adversarial = True
    crafts_in_autocast = True

    def __init__(self, targeted: bool = True) -> None:
        self.targeted = bool(targeted)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "targeted": self.targeted}

    def describe(self) -> str:
        kind = (
            "targeted at a random wrong label per draw" if self.targeted else "untargeted (raises the true-label loss)"
        )
        return f"one signed-gradient step of size τ on the audited model, {kind}"

    def step(self, x: torch.Tensor, grad_sign: torch.Tensor, tau: torch.Tensor, bounds) -> torch.Tensor:
        direction = -grad_sign if self.targeted else grad_sign
        return clip(x + _expand(tau, x) * direction, bounds)

    def perturb(self, model, x, y, tau, generator, bounds=(0.0, 1.0), num_classes=None):
        if model is None:
            raise ValueError("fgsm needs the model it attacks")
        labels = y
        if self.targeted:
            if num_classes is None:
                raise ValueError("targeted fgsm needs num_classes")
            labels = random_targets(y, num_classes, generator)
        sign = input_gradient(model, x, labels).sign()
        return self.step(x, sign, torch.full((x.shape[0],), float(tau), device=x.device), bounds)

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        model = ctx.crafting_model
        assert model is not None
        n, n_tau, c = ctx.x.shape[0], ctx.taus.shape[0], ctx.draws
        zero = [t for t in range(n_tau) if float(ctx.taus[t]) == 0.0]
        active = [t for t in range(n_tau) if float(ctx.taus[t]) != 0.0]
        buffer = RowBuffer(ctx.batch_size)
        dev = ctx.device
        # τ = 0: the clean input stands for every draw.
        for t in zero:
            for batch in buffer.add(
                ctx.x, torch.arange(n, device=dev), torch.full((n,), t, device=dev), torch.full((n,), c, device=dev)
            ):
                yield RowBatch(*batch)
        if active:
            # weights[i, t, k]: how many of the c draws of unit (i, t) use label k.
            weights = np.zeros((n, n_tau, ctx.num_classes), dtype=np.int64)
            y_cpu = ctx.y.cpu()
            for i in range(n):
                for t in active:
                    if self.targeted:
                        gen = generator_for(int(ctx.unit_seeds[i, t]), torch.device("cpu"))
                        targets = random_targets(y_cpu[i].expand(c), ctx.num_classes, gen)
                        weights[i, t] = np.bincount(targets.numpy(), minlength=ctx.num_classes)
                    else:
                        weights[i, t, int(y_cpu[i])] = c
            pairs = np.argwhere(weights.sum(axis=1) > 0)  # (sample, label) pairs that need a gradient
            grad_batch = ctx.batch_size  # the rows of every τ go through the buffer, so memory stays bounded
            for start in range(0, len(pairs), grad_batch):
                block = pairs[start : start + grad_batch]
                idx = torch.as_tensor(block[:, 0], device=dev)
                labels = torch.as_tensor(block[:, 1], device=dev)
                sign = input_gradient(model, ctx.x[idx], labels, ctx.autocast).sign()
                for t in active:
                    w = torch.as_tensor(weights[block[:, 0], t, block[:, 1]], device=dev)
                    keep = w > 0
                    if not bool(keep.any()):
                        continue
                    x_t = self.step(ctx.x[idx][keep], sign[keep], ctx.taus[t].expand(int(keep.sum())), ctx.bounds)
                    tau_idx = torch.full((x_t.shape[0],), t, device=dev)
                    for batch in buffer.add(x_t, idx[keep], tau_idx, w[keep]):
                        yield RowBatch(*batch)
        for batch in buffer.flush():
            yield RowBatch(*batch)


class PGDProbe(Probe):
    name = "pgd"
    adversarial = True
    crafts_in_autocast = True

    def __init__(
        self,
        norm: Literal["linf", "l2"] = "linf",
        steps: int = 10,
        step_size: float | str = DEFAULT_PGD_STEP,
        random_start: bool = True,
        targeted: bool = True,
    ) -> None:
        if norm not in ("linf", "l2"):
            raise ValueError(f"pgd norm must be linf or l2, got {norm!r}")
        if steps < 1:
            raise ValueError("pgd needs at least one step")
        if isinstance(step_size, str):
            text = step_size.replace(" ", "").lower()
            if not text.startswith("tau/"):
                raise ValueError(f"step_size {step_size!r}: give a number or 'tau/K'")
            self.step_divisor: float | None = float(text[4:])
            self.step_size: float | None = None
        else:
            self.step_divisor, self.step_size = None, float(step_size)
        self.norm, self.steps, self.random_start, self.targeted = norm, int(steps), bool(random_start), bool(targeted)
        self.name = "pgd" if norm == "linf" else "pgd-l2"

    def config(self) -> dict[str, Any]:
        step = self.step_size if self.step_divisor is None else f"tau/{self.step_divisor:g}"
        return {
            "name": self.name,
            "norm": self.norm,
            "steps": self.steps,
            "step_size": step,
            "random_start": self.random_start,
            "targeted": self.targeted,
        }

    def describe(self) -> str:
        step = f"{self.step_size:.4g}" if self.step_divisor is None else f"τ/{self.step_divisor:g}"
        start = "random start in the ball" if self.random_start else "starting at x"
        kind = "targeted at a random wrong label per draw" if self.targeted else "untargeted"
        ball = "ℓ∞" if self.norm == "linf" else "ℓ2"
        return (
            f"{self.steps}-step PGD in the {ball} ball of radius τ, step {step}, {start}, {kind}, on the audited model"
        )

    def _alpha(self, tau: torch.Tensor) -> torch.Tensor:
        if self.step_divisor is not None:
            return tau / self.step_divisor
        return torch.full_like(tau, float(self.step_size))  # type: ignore[arg-type]

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        delta = x_adv - x
        if self.norm == "linf":
            radius = _expand(tau, x)
            delta = torch.maximum(torch.minimum(delta, radius), -radius)
        else:
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * _expand(torch.clamp(tau / norms, max=1.0), x)
        return x + delta

    def random_start_noise(self, count: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        return uniform_in_ball(count, shape, self.norm, generator)

    def attack(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        tau: torch.Tensor,
        start: torch.Tensor | None,
        bounds: tuple[float, float] | None,
        autocast: Any | None = None,
    ) -> torch.Tensor:
        """Batched PGD; every row has its own radius ``tau`` and (unit-scale) random ``start``."""
        alpha = _expand(self._alpha(tau), x)
        x_adv = x if start is None else clip(x + _expand(tau, x) * start, bounds)
        for _ in range(self.steps):
            grad = input_gradient(model, x_adv, labels, autocast)
            if self.norm == "linf":
                direction = grad.sign()
            else:
                direction = grad / _expand(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
            x_adv = x_adv - alpha * direction if self.targeted else x_adv + alpha * direction
            x_adv = clip(self._project(x_adv, x, tau), bounds).detach()
        return x_adv

    def perturb(self, model, x, y, tau, generator, bounds=(0.0, 1.0), num_classes=None):
        if model is None:
            raise ValueError("pgd needs the model it attacks")
        labels = y
        if self.targeted:
            if num_classes is None:
                raise ValueError("targeted pgd needs num_classes")
            labels = random_targets(y, num_classes, generator)
        start = (
            self.random_start_noise(x.shape[0], tuple(x.shape[1:]), generator).to(x.device)
            if self.random_start
            else None
        )
        taus = torch.full((x.shape[0],), float(tau), device=x.device)
        return self.attack(model, x, labels, taus, start, bounds)

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        model = ctx.crafting_model
        assert model is not None
        n, n_tau, c = ctx.x.shape[0], ctx.taus.shape[0], ctx.draws
        shape = tuple(ctx.x.shape[1:])
        dev = ctx.device
        pending = RowBuffer(ctx.batch_size)  # (sample, tau, label, start) rows waiting to be attacked
        clean = RowBuffer(ctx.batch_size)
        ones = torch.ones(1, dtype=torch.long, device=dev)

        def run(batch: tuple[torch.Tensor, ...]) -> RowBatch:
            idx, tau_idx, labels, start = batch
            x = ctx.x[idx]
            x_adv = self.attack(
                model, x, labels, ctx.taus[tau_idx], start if self.random_start else None, ctx.bounds, ctx.autocast
            )
            return RowBatch(x_adv, idx, tau_idx, ones.expand(idx.shape[0]))

        for i in range(n):
            for t in range(n_tau):
                if float(ctx.taus[t]) == 0.0:
                    for batch in clean.add(ctx.x[i : i + 1], ones * i, ones * t, ones * c):
                        yield RowBatch(*batch)
                    continue
                gen = generator_for(int(ctx.unit_seeds[i, t]), dev)
                y_rep = ctx.y[i].expand(c)
                labels = random_targets(y_rep, ctx.num_classes, gen) if self.targeted else y_rep.clone()
                start = self.random_start_noise(c, shape, gen) if self.random_start else torch.zeros(c, 1, device=dev)
                for batch in pending.add(
                    torch.full((c,), i, device=dev), torch.full((c,), t, device=dev), labels, start
                ):
                    yield run(batch)
        for batch in pending.flush():
            yield run(batch)
        for batch in clean.flush():
            yield RowBatch(*batch)
