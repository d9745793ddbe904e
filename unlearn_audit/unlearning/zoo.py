"""The rest of the paper's baselines (SPEC §8): NGD, EU-k, CF-k, SCRUB, SSD, Fisher forgetting, NTK, CR.

Defaults follow the paper where it gives them. Where a method is approximated at small scale, the docstring
says how (see also docs/reproduction.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..inference import model_device
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import Progress
from ..training import (
    Batch,
    SGDSettings,
    make_sgd,
    planned_steps,
    run_sgd,
    seeded_generator,
    train_classifier,
    training_task,
)
from .registry import hyperparameters, register_method


def parameter_layers(model: nn.Module) -> list[nn.Module]:
    """Leaf modules that own parameters, in registration order (≈ forward order for ordinary networks)."""
    return [m for m in model.modules() if list(m.parameters(recurse=False))]


def _last_layers(model: nn.Module, k: int) -> list[nn.Module]:
    layers = parameter_layers(model)
    if not 1 <= k <= len(layers):
        raise ValueError(f"k={k}: the model has {len(layers)} parameterised layers")
    return layers[-k:]


@dataclass(frozen=True)
class NGDSettings(SGDSettings):
    noise_std: float = 0.03


@hyperparameters(NGDSettings)
def ngd(
    model: AuditableModel, forget: Samples, retain: Samples, s: NGDSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """NGD: GD on the retain set with Gaussian noise (std ``noise_std``) added to every gradient."""
    gen = torch.Generator(device="cpu").manual_seed(seed + 7)

    def add_noise(net: nn.Module, step: int) -> None:
        for p in net.parameters():
            if p.grad is not None:
                p.grad.add_(torch.randn(p.grad.shape, generator=gen).to(p.grad.device) * s.noise_std)

    train_classifier(
        model, retain.x, retain.y, s.config(seed), progress=progress, description="ngd", grad_hook=add_noise
    )
    return model


@dataclass(frozen=True)
class LastLayersSettings(SGDSettings):
    k: int = 3


def _train_last(
    model: AuditableModel,
    retain: Samples,
    s: LastLayersSettings,
    reinit: bool,
    seed: int,
    progress: Progress,
    name: str,
) -> AuditableModel:
    layers = _last_layers(model.net, s.k)
    trainable = {id(p) for layer in layers for p in layer.parameters(recurse=False)}
    saved = {id(p): p.requires_grad for p in model.parameters()}
    torch.manual_seed(seed)
    if reinit:
        for layer in layers:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()  # type: ignore[operator]
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    try:
        train_classifier(model, retain.x, retain.y, s.config(seed), progress=progress, description=name)
    finally:
        for p in model.parameters():
            p.requires_grad_(saved[id(p)])
    return model


@hyperparameters(LastLayersSettings)
def eu_k(
    model: AuditableModel, forget: Samples, retain: Samples, s: LastLayersSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """EU-k (exact unlearning of the last k layers): re-initialise the last ``k`` parameterised layers and
    retrain only them on the retain set; the rest of the network is frozen."""
    return _train_last(model, retain, s, True, seed, progress, "eu-k")


@hyperparameters(LastLayersSettings)
def cf_k(
    model: AuditableModel, forget: Samples, retain: Samples, s: LastLayersSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """CF-k (catastrophic forgetting of the last k layers): fine-tune only the last ``k`` layers on retain."""
    return _train_last(model, retain, s, False, seed, progress, "cf-k")


@dataclass(frozen=True)
class ScrubSettings(SGDSettings):
    epochs: int = 5
    lr: float = 5e-4
    max_steps_epochs: int = 2
    alpha: float = 0.001
    gamma: float = 0.99
    temperature: float = 4.0


@hyperparameters(ScrubSettings)
def scrub(
    model: AuditableModel, forget: Samples, retain: Samples, s: ScrubSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """SCRUB (Kurmanji et al. 2023): the student starts as the model, the frozen teacher is the model.

    Each epoch: (first ``max_steps_epochs`` epochs only) a max-step pass over the forget set that *increases*
    KL(teacher ‖ student); then a min-step pass over the retain set minimising
    ``alpha·KL(teacher ‖ student) + gamma·CE``. Temperature-scaled KL as in the authors' code. Constant rate.
    """
    device = model_device(model)
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def kl(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = F.log_softmax(teacher(x) / s.temperature, dim=1)
        student = F.log_softmax(model(x) / s.temperature, dim=1)
        return F.kl_div(student, t, log_target=True, reduction="batchmean") * s.temperature**2

    def max_step(batch: Batch) -> torch.Tensor:
        return -kl(forget.x[batch.rows].to(device))

    def min_step(batch: Batch) -> torch.Tensor:
        x, y = retain.x[batch.rows].to(device), retain.y[batch.rows].to(device)
        return s.alpha * kl(x) + s.gamma * F.cross_entropy(model(x), y)

    one_pass = replace(s, epochs=1).config(seed, "constant")
    opt, order = make_sgd(model, s), seeded_generator(seed)  # shared by both passes of every epoch
    per_epoch = planned_steps(len(retain), one_pass) + planned_steps(len(forget), one_pass)
    with training_task(model, progress, "scrub", s.epochs * per_epoch) as task:
        for epoch in range(s.epochs):
            if epoch < s.max_steps_epochs:
                run_sgd(model, max_step, len(forget), one_pass, optimizer=opt, order=order, task=task)
            run_sgd(model, min_step, len(retain), one_pass, optimizer=opt, order=order, task=task)
    return model


def diagonal_fisher(model: nn.Module, samples: Samples, batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: mean over samples of the squared per-sample gradient of the CE loss.

    Per-sample gradients via ``torch.func`` (vmap over grad), in eval mode.
    """
    from torch.func import functional_call, grad, vmap

    device = model_device(model)
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_fn(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    per_sample = vmap(grad(loss_fn), in_dims=(None, 0, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for start in range(0, len(samples), batch_size):
        x = samples.x[start : start + batch_size].to(device)
        y = samples.y[start : start + batch_size].to(device)
        grads = per_sample(params, x, y)
        for k, g in grads.items():
            total[k] += (g**2).sum(0)
    return {k: v / max(1, len(samples)) for k, v in total.items()}


@dataclass(frozen=True)
class SSDSettings:
    dampening: float = 1.0
    selection: float = 10.0
    batch_size: int = 128


@hyperparameters(SSDSettings)
def ssd(
    model: AuditableModel, forget: Samples, retain: Samples, s: SSDSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """SSD (Foster et al. 2024): parameters far more important to the forget set than to the data
    (``I_f > selection · I_d``, diagonal Fisher) are dampened: θ ← θ · min(dampening · I_d / I_f, 1).
    ``I_d`` uses forget ∪ retain, as in the paper."""
    task = progress.start("ssd: fisher", 2)
    i_forget = diagonal_fisher(model, forget, s.batch_size)
    task.advance(1)
    full = Samples(
        torch.cat([forget.x[:], retain.x[:]]),
        torch.cat([forget.y, retain.y]),
        tuple(forget.ids) + tuple(retain.ids),
        forget.domain,
        forget.bounds,
        "forget+retain",
    )
    i_data = diagonal_fisher(model, full, s.batch_size)
    task.advance(1)
    task.close()
    with torch.no_grad():
        for name, p in model.named_parameters():
            f, d = i_forget[name], i_data[name]
            select = f > s.selection * d
            factor = torch.clamp(s.dampening * d / f.clamp_min(1e-20), max=1.0)
            p.mul_(torch.where(select, factor, torch.ones_like(p)))
    return model


@dataclass(frozen=True)
class FisherSettings:
    alpha: float = 1e-6
    batch_size: int = 128
    max_std: float = 0.01


@hyperparameters(FisherSettings)
def fisher_forgetting(
    model: AuditableModel, forget: Samples, retain: Samples, s: FisherSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """Fisher forgetting (Golatkar et al. 2020), diagonal approximation: add Gaussian noise with variance
    ``alpha / F_retain`` per parameter (clamped at ``max_std``), so weights the retain set does not pin down
    are scrambled. Approximated: diagonal empirical Fisher instead of the full Fisher/Hessian."""
    task = progress.start("fisher forgetting", 1)
    f_retain = diagonal_fisher(model, retain, s.batch_size)
    task.advance(1)
    task.close()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = torch.sqrt(s.alpha / f_retain[name].clamp_min(1e-12)).clamp(max=s.max_std)
            p.add_(torch.randn(p.shape, generator=gen).to(p.device) * std)
    return model


def _penultimate(model: AuditableModel, samples: Samples, head: nn.Linear, batch_size: int = 512) -> torch.Tensor:
    """Inputs to the final linear layer (captured with a forward pre-hook)."""
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    device = model_device(model)
    try:
        with torch.no_grad():
            model.eval()
            for start in range(0, len(samples), batch_size):
                model(samples.x[start : start + batch_size].to(device))
    finally:
        handle.remove()
    return torch.cat(captured).double()


def _head(model: AuditableModel) -> nn.Linear:
    layers = [m for m in model.net.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("this method needs a final nn.Linear layer")
    return layers[-1]


def _softmax_regression_hessian(feats: torch.Tensor, w: torch.Tensor, reg: float) -> torch.Tensor:
    """Hessian of the mean multinomial logistic loss w.r.t. the flattened weight [C, d+1] (bias column last)."""
    x = torch.cat([feats, torch.ones(feats.shape[0], 1, dtype=feats.dtype)], 1)
    p = torch.softmax(x @ w.T, 1)  # [n, C]
    n, c = p.shape
    d = x.shape[1]
    h = torch.zeros(c * d, c * d, dtype=x.dtype)
    for a in range(c):
        for b in range(c):
            coef = p[:, a] * ((1.0 if a == b else 0.0) - p[:, b])
            h[a * d : (a + 1) * d, b * d : (b + 1) * d] = (x * coef[:, None]).T @ x / n
    return h + reg * torch.eye(c * d, dtype=x.dtype)


def _grad_softmax_regression(feats: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    x = torch.cat([feats, torch.ones(feats.shape[0], 1, dtype=feats.dtype)], 1)
    p = torch.softmax(x @ w.T, 1)
    p[torch.arange(len(y)), y] -= 1.0
    return (p.T @ x).reshape(-1)  # summed gradient [C*(d+1)]


@dataclass(frozen=True)
class HeadSettings:
    """The ridge (L2) regularisation of the last-layer model CR and NTK solve."""

    reg: float = 1e-3


@hyperparameters(HeadSettings)
def cr(
    model: AuditableModel, forget: Samples, retain: Samples, s: HeadSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """CR (certified-removal style, Guo et al. 2020): one Newton step on the final linear layer that removes
    the forget samples' contribution to the (L2-regularised) softmax-regression loss on frozen features:
    w⁻ = w + H_r⁻¹ · Σ_{forget} ∇ℓ(w) / n_r. No noise is added (the certificate's noise is omitted)."""
    head = _head(model)
    task = progress.start("cr: features", 2)
    f_feat = _penultimate(model, forget, head)
    r_feat = _penultimate(model, retain, head)
    task.advance(1)
    w = torch.cat([head.weight.detach().double(), head.bias.detach().double()[:, None]], 1)
    h = _softmax_regression_hessian(r_feat, w, s.reg)
    g = _grad_softmax_regression(f_feat, forget.y, w) / len(retain)
    step = torch.linalg.solve(h, g).reshape(w.shape)
    task.advance(1)
    task.close()
    with torch.no_grad():
        new = w + step
        head.weight.copy_(new[:, :-1].to(head.weight.dtype))
        head.bias.copy_(new[:, -1].to(head.bias.dtype))
    return model


@hyperparameters(HeadSettings)
def ntk(
    model: AuditableModel, forget: Samples, retain: Samples, s: HeadSettings, *, seed: int, progress: Progress
) -> AuditableModel:
    """NTK forgetting (Golatkar et al. 2020b), approximated on the final layer.

    The network is linearised in the head's parameters only (there the NTK is the feature kernel Φ Φᵀ), and
    training of the head is modelled as ridge regression of scaled one-hot targets Y = s·onehot(y) on the
    features Φ (s fitted to the logits on the retain set). The one-shot update adds to the trained head the
    change this linear model predicts from dropping the forget rows: w ← w + (ŵ_retain − ŵ_all), with
    ŵ_S = (Φ_Sᵀ Φ_S + λ n_S I)⁻¹ Φ_Sᵀ Y_S. The full-network NTK (Jacobian N·C × P) is infeasible at this scale on a
    CPU; cite this method as "NTK (last-layer)".
    """
    head = _head(model)
    task = progress.start("ntk: features", 2)
    f_feat = _penultimate(model, forget, head)
    r_feat = _penultimate(model, retain, head)
    task.advance(1)
    phi_f = torch.cat([f_feat, torch.ones(len(forget), 1, dtype=torch.float64)], 1)
    phi_r = torch.cat([r_feat, torch.ones(len(retain), 1, dtype=torch.float64)], 1)
    w = torch.cat([head.weight.detach().double(), head.bias.detach().double()[:, None]], 1).T  # [d+1, C]
    classes = w.shape[1]
    onehot_r = F.one_hot(retain.y, classes).double()
    scale = float(((phi_r @ w) * onehot_r).sum() / onehot_r.sum())

    def ridge(phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gram = phi.T @ phi + s.reg * phi.shape[0] * torch.eye(phi.shape[1], dtype=torch.float64)
        return torch.linalg.solve(gram, phi.T @ (F.one_hot(y, classes).double() * scale))

    w_retain = ridge(phi_r, retain.y)
    w_all = ridge(torch.cat([phi_r, phi_f]), torch.cat([retain.y, forget.y]))
    task.advance(1)
    task.close()
    with torch.no_grad():
        new = (w + w_retain - w_all).T
        head.weight.copy_(new[:, :-1].to(head.weight.dtype))
        head.bias.copy_(new[:, -1].to(head.bias.dtype))
    return model


register_method("ngd", ngd)
register_method("eu-k", eu_k)
register_method("cf-k", cf_k)
register_method("scrub", scrub)
register_method("ssd", ssd)
register_method("fisher", fisher_forgetting)
register_method("cr", cr)
register_method("ntk", ntk)
