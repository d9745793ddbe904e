"""The one training loop (``training.run_sgd``) against slow, obvious versions of the loops it replaced.

Each reference below is the old per-method loop written out plainly: its own optimiser, generators, batch
order and schedule. Run in the same process on the same data, the method (through the registry) and its
reference must give bit-identical weights; that holds on any CPU, because both do the same arithmetic in the
same order. What it catches: a change in the order of random draws (batch shuffles, forget-batch cycling,
noise), in the schedule, in where clipping or the stop check happens, or in which optimiser state is shared.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import DIGITS
from unlearn_audit import load_model, load_samples
from unlearn_audit.inference import predict
from unlearn_audit.io.samples import Samples
from unlearn_audit.unlearning import method_defaults, registered_methods, unlearn
from unlearn_audit.unlearning.registry import _get


@pytest.fixture(scope="module")
def tiny():
    """The bundled digits original, its 60-image forget set and a 150-image slice of its retain set."""
    model = load_model(DIGITS / "original.safetensors", device="cpu")
    forget = load_samples(DIGITS / "forget.csv")
    full = load_samples(DIGITS / "retain.csv")
    rows = torch.arange(0, len(full), len(full) // 150)[:150]
    retain = Samples(full.x[rows], full.y[rows], tuple(full.ids[i] for i in rows.tolist()))
    return model, forget, retain


def _order(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[start : start + batch_size] for start in range(0, n, batch_size)]


def _cosine(lr: float, step: int, total: int) -> float:
    return lr if total <= 1 else 0.5 * lr * (1 + math.cos(math.pi * step / total))


def _sgd(model, lr, momentum, weight_decay=0.0):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _same(a, b) -> None:
    for (name, x), (_, y) in zip(sorted(a.state_dict().items()), sorted(b.state_dict().items()), strict=True):
        assert torch.equal(x, y), f"{name} differs"


def reference_gd(model, forget, retain, seed, epochs, lr, batch_size, momentum=0.9, weight_decay=5e-4):
    """GD: cross-entropy on retain, cosine schedule set before every step."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = _sgd(model, lr, momentum, weight_decay)
    total, step = epochs * math.ceil(len(retain) / batch_size), 0
    model.train()
    for _ in range(epochs):
        for idx in _order(len(retain), batch_size, gen):
            opt.param_groups[0]["lr"] = _cosine(lr, step, total)
            loss = F.cross_entropy(model(retain.x[idx]), retain.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return model.eval()


def reference_neggrad(model, forget, retain, seed, epochs, lr, batch_size, beta, momentum=0.9, weight_decay=5e-4):
    """NegGrad+: each retain batch paired with the next forget batch; forget batches reshuffle every pass."""
    torch.manual_seed(seed)
    gen, forget_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    opt = _sgd(model, lr, momentum, weight_decay)
    total, step, queue = epochs * math.ceil(len(retain) / batch_size), 0, []
    model.train()
    for _ in range(epochs):
        for idx in _order(len(retain), batch_size, gen):
            queue = queue or _order(len(forget), batch_size, forget_gen)
            fidx = queue.pop(0)
            opt.param_groups[0]["lr"] = _cosine(lr, step, total)
            loss = F.cross_entropy(model(retain.x[idx]), retain.y[idx]) - beta * F.cross_entropy(
                model(forget.x[fidx]), forget.y[fidx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return model.eval()


def reference_ga(model, forget, retain, seed, epochs, lr, batch_size, stop_at_forget_acc, momentum=0.9):
    """GA: ascent on forget, constant rate, no weight decay; stop after the step that reaches the accuracy."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = _sgd(model, lr, momentum)
    steps = 0
    for _ in range(epochs):
        model.train()
        for idx in _order(len(forget), batch_size, gen):
            loss = -F.cross_entropy(model(forget.x[idx]), forget.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if float((predict(model, forget.x) == forget.y).float().mean()) <= stop_at_forget_acc:
                return model.eval(), steps
    return model.eval(), steps


def reference_rurk(model, forget, retain, seed, max_steps, batch_size, tau, lam_f, lam_a, lr=0.01):
    """RURK, Gaussian neighbours (one draw): retain and forget batches cycle, noise from its own generator,
    one forward over [retain | forget | neighbours], gradient clipped at norm 1."""
    torch.manual_seed(seed)
    gen, forget_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    noise_gen = torch.Generator().manual_seed(seed * 1000 + 2)
    opt = _sgd(model, lr, 0.9, 5e-4)
    total = min(2 * math.ceil(len(retain) / batch_size), max_steps)
    retain_queue, forget_queue = [], []
    model.train()
    for step in range(total):
        retain_queue = retain_queue or _order(len(retain), batch_size, gen)
        forget_queue = forget_queue or _order(len(forget), batch_size, forget_gen)
        idx, fidx = retain_queue.pop(0), forget_queue.pop(0)
        opt.param_groups[0]["lr"] = _cosine(lr, step, total)
        xf, yf = forget.x[fidx], forget.y[fidx]
        near = (xf.unsqueeze(0) + tau * torch.randn((1, *xf.shape), generator=noise_gen)).clamp(0, 1)[0]
        logits = model(torch.cat([retain.x[idx], xf, near]))
        nr, nf = len(idx), len(fidx)
        loss = (
            F.cross_entropy(logits[:nr], retain.y[idx])
            - lam_f * F.cross_entropy(logits[nr : nr + nf], yf)
            - lam_a * F.cross_entropy(logits[nr + nf :], yf)
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0)
        opt.step()
    return model.eval()


def reference_scrub(model, forget, retain, seed, epochs, max_steps_epochs, lr, batch_size, alpha, gamma, temp):
    """SCRUB: one optimiser and ONE batch-order generator shared by the forget (max) and retain (min) passes."""
    torch.manual_seed(seed)
    teacher = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(seed)
    opt = _sgd(model, lr, 0.9, 5e-4)

    def kl(x):
        with torch.no_grad():
            t = F.log_softmax(teacher(x) / temp, dim=1)
        return F.kl_div(F.log_softmax(model(x) / temp, dim=1), t, log_target=True, reduction="batchmean") * temp**2

    for epoch in range(epochs):
        model.train()
        passes = [(forget, True)] if epoch < max_steps_epochs else []
        for samples, ascend in [*passes, (retain, False)]:
            for idx in _order(len(samples), batch_size, gen):
                x, y = samples.x[idx], samples.y[idx]
                loss = -kl(x) if ascend else alpha * kl(x) + gamma * F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


def test_gd_matches_the_plain_loop(tiny):
    model, forget, retain = tiny
    got = unlearn("gd", model, forget, retain, seed=3, epochs=2, lr=0.02, batch_size=32)
    _same(got, reference_gd(copy.deepcopy(model), forget, retain, 3, 2, 0.02, 32))


def test_neggrad_plus_matches_the_plain_loop(tiny):
    model, forget, retain = tiny
    got = unlearn("neggrad+", model, forget, retain, seed=1, epochs=2, lr=0.01, batch_size=16, beta=0.05)
    _same(got, reference_neggrad(copy.deepcopy(model), forget, retain, 1, 2, 0.01, 16, 0.05))


def test_ga_early_stop_matches_the_plain_loop(tiny):
    model, forget, retain = tiny
    hp = {"epochs": 30, "lr": 0.002, "batch_size": 8, "stop_at_forget_acc": 0.5}
    got = unlearn("ga", model, forget, retain, seed=0, **hp)
    want, steps = reference_ga(copy.deepcopy(model), forget, retain, 0, 30, 0.002, 8, 0.5)
    assert steps < 30 * math.ceil(len(forget) / 8), "the early stop must fire in this test"
    _same(got, want)


def test_rurk_pairing_matches_the_plain_loop(tiny):
    model, forget, retain = tiny
    hp = {"max_steps": 7, "batch_size": 32, "tau": 0.05, "lambda_forget": 0.05, "lambda_neighbour": 0.1}
    got = unlearn("rurk", model, forget, retain, seed=2, **hp)
    _same(got, reference_rurk(copy.deepcopy(model), forget, retain, 2, 7, 32, 0.05, 0.05, 0.1))


def test_scrub_shared_generator_matches_the_plain_loop(tiny):
    model, forget, retain = tiny
    hp = {"epochs": 3, "max_steps_epochs": 2, "lr": 0.01, "batch_size": 32, "alpha": 0.5, "gamma": 0.9}
    got = unlearn("scrub", model, forget, retain, seed=4, temperature=2.0, **hp)
    _same(got, reference_scrub(copy.deepcopy(model), forget, retain, 4, 3, 2, 0.01, 32, 0.5, 0.9, 2.0))


def test_hyperparameters_are_written_once():
    """A built-in method's keyword defaults are its settings dataclass's fields (RURK's λ: None, from the preset)."""
    for name in registered_methods():
        settings = getattr(_get(name), "settings", None)
        assert settings is not None, f"{name} has no settings dataclass"
        fields = {f.name: f.default for f in dataclasses.fields(settings)}
        if name == "rurk":
            fields.update(lambda_forget=None, lambda_neighbour=None)
        assert method_defaults(name) == fields, name
    params = inspect.signature(_get("rea")).parameters
    assert params["erase_lr"].kind is inspect.Parameter.KEYWORD_ONLY and params["erase_lr"].default == 0.01
