"""Small, deterministic training loops shared by the reference-model builder, the method zoo and remediation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .inference import model_device
from .progress import NULL_PROGRESS, Progress


def seeded_generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def batches(
    n: int, batch_size: int, generator: torch.Generator | None, *, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, shuffled by ``generator`` (None: in order)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def cycle_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches, reshuffled every pass (for pairing a small set with a large one)."""
    while True:
        yield from batches(n, batch_size, generator)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    seed: int = 0
    schedule: str = "cosine"  # or "constant"


def make_sgd(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except modules whose parameters are all frozen, which stay in eval mode."""
    model.train()
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            module.eval()


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant" or total <= 1:
        return cfg.lr
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    progress: Progress = NULL_PROGRESS,
    description: str = "train",
    step_hook: Callable[[int, float], None] | None = None,
    grad_hook: Callable[[nn.Module, int], None] | None = None,
) -> nn.Module:
    """Cross-entropy SGD with a cosine schedule; deterministic for a fixed seed, device and thread count.

    Only parameters with ``requires_grad`` are trained; modules whose parameters are all frozen stay in eval
    mode (their BatchNorm statistics do not move). ``grad_hook(model, step)`` runs between backward and step.
    """
    device = model_device(model)
    gen = seeded_generator(cfg.seed)
    opt = make_sgd(model, cfg)
    per_epoch = math.ceil(x.shape[0] / cfg.batch_size)
    total = cfg.epochs * per_epoch
    task = progress.start(description, total)
    step = 0
    set_train_mode(model)
    try:
        for _ in range(cfg.epochs):
            for idx in batches(x.shape[0], cfg.batch_size, gen):
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step, total)
                xb, yb = x[idx].to(device), y[idx].to(device)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_hook is not None:
                    grad_hook(model, step)
                opt.step()
                step += 1
                if step_hook is not None:
                    step_hook(step, loss.item())
                task.advance(1)
                task.update(info=f"loss {loss.item():.3f}")
    finally:
        task.close()
        model.eval()
    return model
