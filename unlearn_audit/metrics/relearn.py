"""Re-learn time (paper's Table 1): fine-tune a copy of the model on the forget set and count the epochs until
``L(m, S_f) <= 1.05 · L(original, S_f)``; cap 30 (reported ``">30"``, JSON value 31 with ``censored: true``).

Choices the paper leaves open (ours, documented in docs/metrics.md):

* optimiser SGD, lr 1e-4, momentum 0.9, no weight decay, batch 64, constant rate, batch order seeded. At a
  training-sized rate (1e-2) a forget set drawn from one class is re-learned by every model in one epoch (the
  network learns to answer that class everywhere), so the count would not separate anything;
* BatchNorm layers stay in eval mode: the forget set may hold one class only, and its batch statistics would
  otherwise overwrite the running statistics the loss is measured with;
* the loss is the mean cross-entropy over the whole forget set, in eval mode, after each epoch; epoch 0 (before
  any step) counts, so a model already at the target reads 0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..inference import predict_logits
from ..progress import NULL_PROGRESS, Progress
from ..training import Batch, TrainConfig, make_sgd, run_sgd, seeded_generator


@dataclass(frozen=True)
class RelearnSettings:
    lr: float = 1e-4
    momentum: float = 0.9
    batch_size: int = 64
    cap: int = 30
    tolerance: float = 1.05

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RelearnOutcome:
    epochs: int
    censored: bool
    target_loss: float
    losses: list[float] = field(default_factory=list)

    def to_dict(self, cap: int) -> dict[str, Any]:
        return {
            "value": cap + 1 if self.censored else self.epochs,
            "lo": None,
            "hi": None,
            "censored": self.censored,
            "display": f">{cap}" if self.censored else str(self.epochs),
            "target_loss": round(self.target_loss, 6),
            "losses": [round(x, 6) for x in self.losses],
        }


def forget_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy in eval mode (the quantity re-learn time thresholds)."""
    return float(F.cross_entropy(predict_logits(model, x), y).item())


def _freeze_batchnorm(model: nn.Module) -> None:
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def relearn_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target_loss: float,
    *,
    settings: RelearnSettings = RelearnSettings(),
    seed: int = 0,
    device: torch.device | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "re-learn",
) -> RelearnOutcome:
    """Epochs of fine-tuning on ``(x, y)`` until the loss is at most ``target_loss`` (a copy is trained)."""
    net = copy.deepcopy(model)
    if device is not None:
        net = net.to(device)
    dev = next(net.parameters()).device
    for p in net.parameters():
        p.requires_grad_(True)
    epoch_cfg = TrainConfig(1, settings.lr, settings.momentum, 0.0, settings.batch_size, seed, "constant")
    opt, order = make_sgd(net, epoch_cfg), seeded_generator(seed)  # one optimiser and batch order throughout

    def cross_entropy(batch: Batch) -> torch.Tensor:
        return F.cross_entropy(net(x[batch.rows].to(dev)), y[batch.rows].to(dev))

    losses = [forget_loss(net, x, y)]
    task = progress.start(description, settings.cap)
    try:
        epoch = 0
        while losses[-1] > target_loss and epoch < settings.cap:
            run_sgd(net, cross_entropy, x.shape[0], epoch_cfg, optimizer=opt, order=order, train_mode=_freeze_batchnorm)
            epoch += 1
            losses.append(forget_loss(net, x, y))
            task.advance(1)
            task.update(info=f"loss {losses[-1]:.3f} (target {target_loss:.3f})")
    finally:
        task.close()
    censored = losses[-1] > target_loss
    return RelearnOutcome(epoch, censored, target_loss, losses)
