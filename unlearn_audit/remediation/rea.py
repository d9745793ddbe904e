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

import functools
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
from ..training import Batch, TrainConfig, planned_steps, run_sgd, seeded_generator, training_task
from ..unlearning.registry import hyperparameters


@dataclass(frozen=True)
class ReASettings:
    """Every knob of a ReA run, and the one place their defaults are written: the registry's ``rea`` method
    (and so ``method_defaults("rea")`` and the CLI's ``--param``) takes its keyword signature from these fields."""

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
            least = 1 if name == "batch_size" else 0
            if int(getattr(self, name)) < least:
                raise ConfigError(f"rea: {name}={getattr(self, name)} must be at least {least}")
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
    s = settings
    device = model_device(model)
    num_classes = model.meta.num_classes or int(max(int(forget.y.max()), int(retain.y.max())) + 1)
    captured: dict[str, torch.Tensor] = {}
    hook = final_linear(model).register_forward_hook(lambda _m, inputs, _o: captured.__setitem__("f", inputs[0]))
    params = [p for p in model.parameters() if p.requires_grad]
    erase = TrainConfig(s.erase_epochs, s.erase_lr, s.momentum, s.weight_decay, s.batch_size, seed, "constant")
    replay = TrainConfig(s.replay_epochs, s.replay_lr, s.momentum, s.weight_decay, s.batch_size, seed, "linear")
    order, label_gen = seeded_generator(seed), seeded_generator(seed + 1)  # one batch order across both phases
    terms: dict[str, torch.Tensor] = {}

    def erase_loss(batch: Batch) -> torch.Tensor:
        x, y = forget.x[batch.rows].to(device), forget.y[batch.rows]
        targets = random_targets(y, num_classes, label_gen).to(device)
        terms["random"] = F.cross_entropy(model(x), targets)
        terms["orth"] = orthogonality_penalty(captured["f"])
        return s.lambda_random * terms["random"] + s.lambda_orthogonal * terms["orth"]

    def replay_loss(batch: Batch) -> torch.Tensor:
        x, y = retain.x[batch.rows].to(device), retain.y[batch.rows].to(device)
        terms["ce"] = F.cross_entropy(model(x), y)
        l1 = sum(p.abs().sum() for p in params) if s.l1 > 0 else torch.zeros((), device=device)
        return terms["ce"] + s.l1 * l1

    def erase_info(batch: Batch, loss: torch.Tensor) -> str:
        return f"erase: CE(random) {terms['random'].item():.3f} orth {terms['orth'].item():.4f}"

    def replay_info(batch: Batch, loss: torch.Tensor) -> str:
        return f"replay: CE(retain) {terms['ce'].item():.3f}"

    total = planned_steps(len(forget), erase) + planned_steps(len(retain), replay)
    phase = functools.partial(run_sgd, model, order=order, grad_clip=s.grad_clip, train_mode=nn.Module.train)
    try:
        with training_task(model, progress, "rea", total) as task:
            phase(erase_loss, len(forget), erase, info=erase_info, task=task)
            phase(replay_loss, len(retain), replay, info=replay_info, task=task)
    finally:
        hook.remove()
    return model


rea = hyperparameters(ReASettings)(run_rea)
rea.__doc__ = (
    """ReA dual-phase remediation (registry entry ``"rea"``); hyper-parameters and defaults: :class:`ReASettings`."""
)
