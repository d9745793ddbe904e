"""RURK: fine-tune a model so that it stops recognising perturbed neighbours of the forget set (SPEC §7).

Algorithm 1 of Hsu et al. (NeurIPS 2025), as a descent step (the printed "+∇" is a typo). Each step pairs one
retain batch with the next forget batch (the forget batches cycle, reshuffled every pass):

    loss = CE(m(x_r), y_r) − λ_f · CE(m(x_f), y_f) − λ_a · CE(m(x'), y_f)       x' = perturb(x_f)

Neighbour generators (``neighbours=``):

* ``"gaussian"`` (paper default): ``v = neighbour_draws`` (default 1) draws ``x' = clip(x + τ·N(0, I))``; the
  neighbour term averages over them.
* ``"targeted-fgsm"``: one signed-gradient step of size τ toward a random wrong label y' ≠ y (crafted on the
  model being trained, fresh y' per step). The term flips sign and becomes ``+λ_a · CE(m(x'), y')``: the model
  is taught to call the neighbour y'.
* ``"targeted-pgd"``: ``pgd_steps`` projected ℓ∞ steps of size τ/4 from a random start, toward a random y',
  with the same sign-flipped term.
* ``"vulnerable"``: the vulnerable-set variant. Of ``neighbour_draws`` Gaussian candidates it keeps, per sample,
  the one with the smallest true-label loss (``argmin_j CE(m(x'_j), y)``: the neighbour the model most
  confidently still labels y, the kind the audit counts as residual knowledge) and ascends its loss.

Defaults are the paper's: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128, cosine schedule, gradient
clipping at norm 1.0, N = 2 epochs over the retain set, at most 200 steps, τ = 0.03. Presets: ``small``
(λ_f = λ_a = 0.03; the paper's small data sets) and ``cifar10`` (λ_f = 0.03, λ_a = 0.00045).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..inference import model_device
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..probes.base import random_targets
from ..progress import NULL_PROGRESS, Progress
from ..training import Batch, TrainConfig, planned_steps, run_sgd, seeded_generator
from ..unlearning.registry import hyperparameters

Neighbours = Literal["gaussian", "targeted-fgsm", "targeted-pgd", "vulnerable"]
NEIGHBOURS: tuple[str, ...] = ("gaussian", "targeted-fgsm", "targeted-pgd", "vulnerable")
PRESETS: dict[str, dict[str, float]] = {
    "small": {"lambda_forget": 0.03, "lambda_neighbour": 0.03},
    "cifar10": {"lambda_forget": 0.03, "lambda_neighbour": 0.00045},
}


@dataclass(frozen=True)
class RURKSettings:
    """Every knob of a RURK run, resolved (the preset already applied)."""

    preset: str = "small"
    lambda_forget: float = 0.03
    lambda_neighbour: float = 0.03
    tau: float = 0.03
    neighbours: str = "gaussian"
    neighbour_draws: int = 1
    pgd_steps: int = 10
    epochs: int = 2
    max_steps: int = 200
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    grad_clip: float = 1.0
    schedule: str = "cosine"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.neighbours not in NEIGHBOURS:
            raise ConfigError(f"rurk: neighbours={self.neighbours!r}; choose from {', '.join(NEIGHBOURS)}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"rurk: schedule={self.schedule!r}; use cosine or constant")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"rurk: precision={self.precision!r}; use fp32 or bf16 (bf16 autocast on CUDA only)")
        for name in ("epochs", "max_steps", "batch_size", "neighbour_draws", "pgd_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"rurk: {name}={getattr(self, name)} must be at least 1")
        for name in ("lambda_forget", "lambda_neighbour", "tau", "lr", "weight_decay", "grad_clip"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"rurk: {name}={value} must be a finite number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_settings(preset: str | None = "small", **overrides: Any) -> RURKSettings:
    """The preset's λ values, then any explicit (non-None) override."""
    name = preset or "small"
    if name not in PRESETS:
        raise ConfigError(f"rurk: preset {name!r} unknown; choose from {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in RURKSettings.__dataclass_fields__.values()})
    if unknown:
        raise ConfigError(f"rurk: unknown hyper-parameter(s) {', '.join(unknown)}")
    lambdas = PRESETS[name]
    base = RURKSettings(
        preset=name, lambda_forget=lambdas["lambda_forget"], lambda_neighbour=lambdas["lambda_neighbour"]
    )
    return replace(base, **given)


@dataclass
class RURKLog:
    """What one run did: steps taken and the running (exponentially averaged) losses at the end."""

    steps: int = 0
    retain_loss: float = float("nan")
    forget_loss: float = float("nan")
    neighbour_loss: float = float("nan")
    seconds: float = 0.0


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _clip(x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def _input_grad(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _neighbours(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: RURKSettings,
    gen: torch.Generator,
    bounds: tuple[float, float] | None,
    num_classes: int,
    autocast: Any,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Neighbours x' of the forget batch, the labels their CE is taken against, and the sign of the term.

    Crafting (FGSM/PGD gradients, the vulnerable-set choice) runs with the model in eval mode, so it does not
    move BatchNorm statistics; only the training forward pass does.
    """
    device, tau = x.device, settings.tau
    kind = settings.neighbours
    if kind == "gaussian":
        v = settings.neighbour_draws
        noise = torch.randn((v, *x.shape), generator=gen).to(device)
        flat = _clip(x.unsqueeze(0) + tau * noise, bounds).reshape(v * x.shape[0], *x.shape[1:])
        return flat, y.repeat(v), -1.0
    was_training = model.training
    model.eval()
    try:
        if kind == "vulnerable":
            v = settings.neighbour_draws
            noise = torch.randn((v, *x.shape), generator=gen).to(device)
            candidates = _clip(x.unsqueeze(0) + tau * noise, bounds)
            with torch.no_grad(), autocast:
                flat = candidates.reshape(v * x.shape[0], *x.shape[1:])
                per = F.cross_entropy(model(flat).float(), y.repeat(v), reduction="none").view(v, -1)
            chosen = candidates[per.argmin(0), torch.arange(x.shape[0], device=device)]
            return chosen, y, -1.0
        targets = random_targets(y.cpu(), num_classes, gen).to(device)
        if kind == "targeted-fgsm":
            with autocast:
                grad = _input_grad(model, x, targets)
            return _clip(x - tau * grad.sign(), bounds).detach(), targets, 1.0
        start = (torch.rand(x.shape, generator=gen) * 2 - 1).to(device)
        x_adv = _clip(x + tau * start, bounds)
        for _ in range(settings.pgd_steps):
            with autocast:
                grad = _input_grad(model, x_adv, targets)
            x_adv = x_adv - (tau / 4) * grad.sign()
            x_adv = _clip(x + (x_adv - x).clamp(-tau, tau), bounds).detach()
        return x_adv, targets, 1.0
    finally:
        model.train(was_training)


def _distributed() -> tuple[int, int] | None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def run_rurk(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    settings: RURKSettings,
    *,
    seed: int = 0,
    progress: Progress = NULL_PROGRESS,
    log: RURKLog | None = None,
) -> AuditableModel:
    """Train ``model`` in place with RURK and return it (in eval mode).

    Deterministic for a fixed seed, device and thread count: every random draw (batch order, Gaussian noise,
    target labels, PGD starts) comes from CPU generators seeded from ``seed``. Under ``torch.distributed`` the
    model is wrapped in DistributedDataParallel and each global batch is split across ranks (rank r takes rows
    r, r + W, ...), so the averaged gradient matches the single-process one up to float rounding.
    """
    import time

    if len(forget) == 0 or len(retain) == 0:
        raise ConfigError("rurk needs a non-empty forget set and a non-empty retain set")
    num_classes = model.meta.num_classes or int(max(int(forget.y.max()), int(retain.y.max())) + 1)
    device = model_device(model)
    channels_last = device.type == "cuda" and len(retain.input_shape) == 3
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    rank_world = _distributed()
    trained: nn.Module = model
    if rank_world is not None:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    rank, world = rank_world or (0, 1)
    s = settings
    cfg = TrainConfig(s.epochs, s.lr, s.momentum, s.weight_decay, s.batch_size, seed, s.schedule)
    noise_gen = seeded_generator(seed * 1000 + 2 + rank)
    total = planned_steps(len(retain), cfg, s.max_steps)
    autocast = _autocast(device, s.precision)
    record = log if log is not None else RURKLog()
    terms: dict[str, torch.Tensor] = {}
    smooth: dict[str, float] = {}

    def loss(batch: Batch) -> torch.Tensor:
        assert batch.paired is not None
        xr, yr = _to(retain.x[batch.rows], device, channels_last), retain.y[batch.rows].to(device)
        xf, yf = _to(forget.x[batch.paired], device, channels_last), forget.y[batch.paired].to(device)
        x_near, y_near, sign = _neighbours(model, xf, yf, s, noise_gen, forget.bounds, num_classes, autocast)
        # One forward pass over [retain | forget | neighbours]: cheaper, and DDP-safe (one forward per backward).
        with autocast:
            logits = trained(torch.cat([xr, xf, x_near])).float()
        nr, nf = xr.shape[0], xf.shape[0]
        terms["retain"] = F.cross_entropy(logits[:nr], yr)
        terms["forget"] = F.cross_entropy(logits[nr : nr + nf], yf)
        terms["neighbour"] = F.cross_entropy(logits[nr + nf :], y_near)
        return terms["retain"] - s.lambda_forget * terms["forget"] + sign * s.lambda_neighbour * terms["neighbour"]

    def info(batch: Batch, _loss: torch.Tensor) -> str:
        for key, term in terms.items():
            value = float(term.detach())
            smooth[key] = value if key not in smooth else 0.9 * smooth[key] + 0.1 * value
        return (
            f"step {batch.step + 1}/{total} CE retain {smooth['retain']:.3f} forget {smooth['forget']:.3f} "
            f"neighbour {smooth['neighbour']:.3f}"
        )

    started = time.perf_counter()
    record.steps = run_sgd(
        model,
        loss,
        len(retain),
        cfg,
        paired_rows=len(forget),
        max_steps=s.max_steps,
        grad_clip=s.grad_clip,
        info=info,
        train_mode=lambda _model: trained.train(),
        shard=(rank, world),
        progress=progress,
        description="rurk",
    )
    record.retain_loss = smooth.get("retain", float("nan"))
    record.forget_loss = smooth.get("forget", float("nan"))
    record.neighbour_loss = smooth.get("neighbour", float("nan"))
    record.seconds = time.perf_counter() - started
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return model


rurk = hyperparameters(RURKSettings, build=resolve_settings, unset=("lambda_forget", "lambda_neighbour"))(run_rurk)
rurk.__doc__ = """RURK (registry entry ``"rurk"``). ``lambda_forget`` / ``lambda_neighbour`` default to the preset's."""
