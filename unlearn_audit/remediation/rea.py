"""ReA's dual-phase remediation (Xiao et al., ICCV 2025; SPEC §6): erase deep-layer residues, then stabilise.

* **Phase 1, erase** (``erase_epochs`` passes over the forget set): each forget batch is trained toward fresh
  random wrong labels (``lambda_random · CE(m(x_f), y_rand)``) while the deep-layer features of the batch (the
  input of the final linear layer) are pushed to be mutually orthogonal (``lambda_orthogonal`` · mean squared
  off-diagonal cosine similarity). Both remove the class structure the forget samples still carry in the deep
  layers, which is what brief fine-tuning would otherwise bring back.
* **Phase 2, convergence stability** (``replay_epochs`` passes over the retain set): the retain set is replayed
  with a learning rate that decays linearly to zero, plus a small L1 penalty on the weights (``l1``), so the
  model settles into a minimum that the retain data alone supports.

The authors' paper text was not available to us (SPEC §6); this follows the description of their released
code. Knob names are ours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..inference import model_device
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..probes.base import random_targets
from ..progress import NULL_PROGRESS, Progress
from ..training import batches, seeded_generator


@dataclass(frozen=True)
class ReASettings:
    lambda_random: float = 1.0
    lambda_orthogonal: float = 0.1
    erase_epochs: int = 2
    erase_lr: float = 0.01
    replay_epochs: int = 3
    replay_lr: float = 0.01
    l1: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        for name in ("erase_epochs", "replay_epochs", "batch_size"):
            if int(getattr(self, name)) < (0 if name != "batch_size" else 1):
                raise ConfigError(f"rea: {name}={getattr(self, name)} must not be negative")
        for name in ("lambda_random", "lambda_orthogonal", "erase_lr", "replay_lr", "l1", "weight_decay", "grad_clip"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"rea: {name}={value} must be a finite number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def final_linear(model: nn.Module) -> nn.Linear:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ConfigError("rea reads deep features at the input of the final nn.Linear layer; this model has none")
    return last


def orthogonality_penalty(features: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal cosine similarity of a batch of feature vectors (0 when mutually orthogonal)."""
    f = F.normalize(features.flatten(1).float(), dim=1)
    gram = f @ f.t()
    n = gram.shape[0]
    if n < 2:
        return gram.new_zeros(())
    off = gram - torch.eye(n, device=gram.device)
    return (off**2).sum() / (n * (n - 1))


def run_rea(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    settings: ReASettings,
    *,
    seed: int = 0,
    progress: Progress = NULL_PROGRESS,
) -> AuditableModel:
    """Train ``model`` in place with both phases and return it in eval mode. Deterministic for a fixed seed."""
    if len(forget) == 0 or len(retain) == 0:
        raise ConfigError("rea needs a non-empty forget set and a non-empty retain set")
    device = model_device(model)
    num_classes = model.meta.num_classes or int(max(int(forget.y.max()), int(retain.y.max())) + 1)
    captured: dict[str, torch.Tensor] = {}
    hook = final_linear(model).register_forward_hook(lambda _m, inputs, _o: captured.__setitem__("f", inputs[0]))
    params = [p for p in model.parameters() if p.requires_grad]
    bs = settings.batch_size
    erase_steps = settings.erase_epochs * math.ceil(len(forget) / bs)
    replay_steps = settings.replay_epochs * math.ceil(len(retain) / bs)
    order_gen, label_gen = seeded_generator(seed), seeded_generator(seed + 1)
    task = progress.start("rea", erase_steps + replay_steps)
    model.train()
    try:
        opt = torch.optim.SGD(
            params, lr=settings.erase_lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
        for _ in range(settings.erase_epochs):
            for idx in batches(len(forget), bs, order_gen):
                x, y = forget.x[idx].to(device), forget.y[idx]
                targets = random_targets(y, num_classes, label_gen).to(device)
                random_ce = F.cross_entropy(model(x), targets)
                orth = orthogonality_penalty(captured["f"])
                loss = settings.lambda_random * random_ce + settings.lambda_orthogonal * orth
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                opt.step()
                task.advance(1)
                task.update(info=f"erase: CE(random) {random_ce.item():.3f} orth {orth.item():.4f}")
        opt = torch.optim.SGD(
            params, lr=settings.replay_lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
        step = 0
        for _ in range(settings.replay_epochs):
            for idx in batches(len(retain), bs, order_gen):
                for group in opt.param_groups:
                    group["lr"] = settings.replay_lr * (1 - step / max(replay_steps, 1))
                x, y = retain.x[idx].to(device), retain.y[idx].to(device)
                ce = F.cross_entropy(model(x), y)
                l1 = sum(p.abs().sum() for p in params) if settings.l1 > 0 else torch.zeros((), device=device)
                loss = ce + settings.l1 * l1
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                opt.step()
                step += 1
                task.advance(1)
                task.update(info=f"replay: CE(retain) {ce.item():.3f}")
    finally:
        hook.remove()
        task.close()
        model.eval()
    return model


def rea(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    *,
    seed: int,
    progress: Progress,
    lambda_random: float = 1.0,
    lambda_orthogonal: float = 0.1,
    erase_epochs: int = 2,
    erase_lr: float = 0.01,
    replay_epochs: int = 3,
    replay_lr: float = 0.01,
    l1: float = 1e-5,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    grad_clip: float = 1.0,
) -> AuditableModel:
    """ReA dual-phase remediation (registry entry ``"rea"``)."""
    settings = ReASettings(
        lambda_random=lambda_random,
        lambda_orthogonal=lambda_orthogonal,
        erase_epochs=erase_epochs,
        erase_lr=erase_lr,
        replay_epochs=replay_epochs,
        replay_lr=replay_lr,
        l1=l1,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        grad_clip=grad_clip,
    )
    return run_rea(model, forget, retain, settings, seed=seed, progress=progress)
