"""Retraining and the fine-tuning family: GD (fine-tune on retain), GA (ascent on forget), NegGrad+."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..inference import model_device, predict
from ..io.architectures import build_architecture
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import Progress
from ..training import TrainConfig, batches, cycle_batches, lr_at, make_sgd, seeded_generator, train_classifier
from .registry import register_method


def retrain(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    *,
    seed: int,
    progress: Progress,
    epochs: int = 20,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 128,
) -> AuditableModel:
    """Train a fresh copy of the same architecture on the retain set only (the gold standard)."""
    meta = model.meta
    if meta.arch is None or meta.num_classes is None:
        raise ValueError("retrain needs the model's arch and num_classes (load it from a file with metadata)")
    torch.manual_seed(seed)
    net = build_architecture(meta.arch, meta.num_classes, meta.input_shape).to(model_device(model))
    fresh = AuditableModel(net, meta).to(model_device(model))
    cfg = TrainConfig(epochs, lr, momentum, weight_decay, batch_size, seed)
    return train_classifier(fresh, retain.x, retain.y, cfg, progress=progress, description="retrain")  # type: ignore[return-value]


def gd(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    *,
    seed: int,
    progress: Progress,
    epochs: int = 10,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
) -> AuditableModel:
    """GD / fine-tune: keep training on the retain set (paper: 10 epochs, lr 1e-2)."""
    cfg = TrainConfig(epochs, lr, momentum, weight_decay, batch_size, seed)
    return train_classifier(model, retain.x, retain.y, cfg, progress=progress, description="gd")  # type: ignore[return-value]


def ga(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    *,
    seed: int,
    progress: Progress,
    epochs: int = 1,
    lr: float = 1e-5,
    momentum: float = 0.9,
    batch_size: int = 128,
    stop_at_forget_acc: float | None = None,
) -> AuditableModel:
    """GA: gradient *ascent* on the forget loss (paper: lr 1e-5, 1 epoch).

    ``stop_at_forget_acc`` ends the run after the first step that brings forget accuracy (eval mode) to or below
    it; the check costs one forward pass over the forget set per step.
    """
    device = model_device(model)
    gen = seeded_generator(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    task = progress.start("ga", epochs * math.ceil(len(forget) / batch_size))
    try:
        for _ in range(epochs):
            model.train()
            for idx in batches(len(forget), batch_size, gen):
                loss = -F.cross_entropy(model(forget.x[idx].to(device)), forget.y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                task.advance(1)
                if stop_at_forget_acc is not None:
                    acc = float((predict(model, forget.x) == forget.y).float().mean())
                    if acc <= stop_at_forget_acc:
                        return model
    finally:
        task.close()
        model.eval()
    return model


def neggrad_plus(
    model: AuditableModel,
    forget: Samples,
    retain: Samples,
    *,
    seed: int,
    progress: Progress,
    epochs: int = 5,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    beta: float = 0.001,
) -> AuditableModel:
    """NegGrad+: descent on retain plus ``beta``-weighted ascent on forget, one forget batch per retain batch."""
    device = model_device(model)
    gen = seeded_generator(seed)
    cfg = TrainConfig(epochs, lr, momentum, weight_decay, batch_size, seed)
    opt = make_sgd(model, cfg)
    per_epoch = math.ceil(len(retain) / batch_size)
    total = epochs * per_epoch
    forget_batches = cycle_batches(len(forget), batch_size, seeded_generator(seed + 1))
    task = progress.start("neggrad+", total)
    step = 0
    model.train()
    try:
        for _ in range(epochs):
            for idx in batches(len(retain), batch_size, gen):
                fidx = next(forget_batches)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step, total)
                loss = F.cross_entropy(
                    model(retain.x[idx].to(device)), retain.y[idx].to(device)
                ) - beta * F.cross_entropy(model(forget.x[fidx].to(device)), forget.y[fidx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                task.advance(1)
    finally:
        task.close()
        model.eval()
    return model


register_method("retrain", retrain)
register_method("gd", gd)
register_method("ga", ga)
register_method("neggrad+", neggrad_plus)
