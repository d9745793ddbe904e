"""Retraining and the fine-tuning family: GD (fine-tune on retain), GA (ascent on forget), NegGrad+.

Each method states its hyper-parameters once, as a frozen dataclass (the registry reads the defaults from it),
and its loss; :func:`~unlearn_audit.training.run_sgd` runs the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..inference import model_device, predict
from ..io.architectures import build_architecture
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import Progress
from ..training import Batch, SGDSettings, TrainConfig, run_sgd, train_classifier
from .registry import hyperparameters, register_method


@dataclass(frozen=True)
class RetrainSettings(SGDSettings):
    epochs: int = 20
    lr: float = 0.05
    weight_decay: float = 0.0


@hyperparameters(RetrainSettings)
def retrain(
    model: AuditableModel, forget: Samples, retain: Samples, s: RetrainSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """Train a fresh copy of the same architecture on the retain set only (the gold standard)."""
    meta = model.meta
    if meta.arch is None or meta.num_classes is None:
        raise ValueError("retrain needs the model's arch and num_classes (load it from a file with metadata)")
    torch.manual_seed(seed)
    net = build_architecture(meta.arch, meta.num_classes, meta.input_shape).to(model_device(model))
    fresh = AuditableModel(net, meta).to(model_device(model))
    train_classifier(fresh, retain.x, retain.y, s.config(seed), progress=progress, description="retrain")
    return fresh


@hyperparameters(SGDSettings)
def gd(
    model: AuditableModel, forget: Samples, retain: Samples, s: SGDSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """GD / fine-tune: keep training on the retain set (paper: 10 epochs, lr 1e-2)."""
    train_classifier(model, retain.x, retain.y, s.config(seed), progress=progress, description="gd")
    return model


@dataclass(frozen=True)
class GASettings:
    epochs: int = 1
    lr: float = 1e-5
    momentum: float = 0.9
    batch_size: int = 128
    stop_at_forget_acc: float | None = None


@hyperparameters(GASettings)
def ga(
    model: AuditableModel, forget: Samples, retain: Samples, s: GASettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """GA: gradient *ascent* on the forget loss (paper: lr 1e-5, 1 epoch; no weight decay).

    ``stop_at_forget_acc`` ends the run after the first step that brings forget accuracy (eval mode) to or below
    it; the check costs one forward pass over the forget set per step.
    """
    device = model_device(model)
    threshold = s.stop_at_forget_acc

    def ascent(batch: Batch) -> torch.Tensor:
        return -F.cross_entropy(model(forget.x[batch.rows].to(device)), forget.y[batch.rows].to(device))

    def forgotten(batch: Batch, loss: torch.Tensor) -> bool:
        return threshold is not None and float((predict(model, forget.x) == forget.y).float().mean()) <= threshold

    cfg = TrainConfig(s.epochs, s.lr, s.momentum, 0.0, s.batch_size, seed, "constant")
    run_sgd(
        model,
        ascent,
        len(forget),
        cfg,
        stop_when=forgotten,
        train_mode=nn.Module.train,
        progress=progress,
        description="ga",
    )
    return model


@dataclass(frozen=True)
class NegGradSettings(SGDSettings):
    epochs: int = 5
    beta: float = 0.001


@hyperparameters(NegGradSettings)
def neggrad_plus(
    model: AuditableModel, forget: Samples, retain: Samples, s: NegGradSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """NegGrad+: descent on retain plus ``beta``-weighted ascent on forget, one forget batch per retain batch."""
    device = model_device(model)

    def loss(batch: Batch) -> torch.Tensor:
        assert batch.paired is not None
        retain_ce = F.cross_entropy(model(retain.x[batch.rows].to(device)), retain.y[batch.rows].to(device))
        forget_ce = F.cross_entropy(model(forget.x[batch.paired].to(device)), forget.y[batch.paired].to(device))
        return retain_ce - s.beta * forget_ce

    pairs = len(forget)
    run_sgd(
        model,
        loss,
        len(retain),
        s.config(seed),
        paired_rows=pairs,
        train_mode=nn.Module.train,
        progress=progress,
        description="neggrad+",
    )
    return model


register_method("retrain", retrain)
register_method("gd", gd)
register_method("ga", ga)
register_method("neggrad+", neggrad_plus)
