"""RURK and ReA: the update is Algorithm 1's, the options do what their names say, runs are reproducible."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import DIGITS, assert_one_line_error
from unlearn_audit import ConfigError, load_model, load_samples, samples_from_tensors, wrap_model
from unlearn_audit.io.hashing import sha256_state_dict
from unlearn_audit.remediation import RURKLog, resolve_settings, run_rurk
from unlearn_audit.remediation.rea import orthogonality_penalty
from unlearn_audit.remediation.rurk import _neighbours
from unlearn_audit.unlearning import method_defaults, registered_methods, unlearn


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    model = wrap_model(net, num_classes=3, input_shape=(6,))
    gen = torch.Generator().manual_seed(seed)
    forget = samples_from_tensors(torch.rand(10, 6, generator=gen), torch.randint(0, 3, (10,), generator=gen))
    retain = samples_from_tensors(torch.rand(20, 6, generator=gen), torch.randint(0, 3, (20,), generator=gen))
    return model, forget, retain


def test_registered_and_presets():
    assert {"rurk", "rea"} <= set(registered_methods())
    assert resolve_settings("small").lambda_forget == resolve_settings("small").lambda_neighbour == 0.03
    cifar = resolve_settings("cifar10")
    assert (cifar.lambda_forget, cifar.lambda_neighbour) == (0.03, 0.00045)
    assert resolve_settings("cifar10", lambda_neighbour=0.1).lambda_neighbour == 0.1
    paper = resolve_settings()
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size) == (0.01, 0.9, 5e-4, 128)
    assert (paper.grad_clip, paper.max_steps, paper.tau, paper.epochs, paper.schedule) == (1.0, 200, 0.03, 2, "cosine")
    assert (paper.neighbours, paper.neighbour_draws) == ("gaussian", 1)
    with pytest.raises(ConfigError, match="preset 'huge'"):
        resolve_settings("huge")
    with pytest.raises(ConfigError, match="neighbours='blur'"):
        resolve_settings(neighbours="blur")
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        model, forget, retain = tiny()
        unlearn("rurk", model, forget, retain, lamda=0.1)


@pytest.mark.training
def test_one_step_is_algorithm_1():
    """τ = 0 makes the Gaussian neighbour the forget sample itself: one SGD step on CE_r − (λ_f + λ_a)·CE_f."""
    model, forget, retain = tiny()
    expected = copy.deepcopy(model)
    settings = resolve_settings(tau=0.0, max_steps=1, batch_size=32, lambda_forget=0.2, lambda_neighbour=0.1)
    run_rurk(model, forget, retain, settings, seed=0)
    # by hand: full batches (batch 32 > set sizes), lr 0.01 at step 0, clip at 1, momentum buffer = first gradient
    loss = F.cross_entropy(expected(retain.x), retain.y) - 0.3 * F.cross_entropy(expected(forget.x), forget.y)
    loss.backward()
    params = list(expected.parameters())
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    with torch.no_grad():
        for p in params:
            p -= 0.01 * (p.grad + 5e-4 * p)
    for got, want in zip(model.parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.training
def test_step_budget_and_progress_report():
    model, forget, retain = tiny()
    seen: list[str] = []

    class Recorder:
        def start(self, description, total):
            seen.append(f"start {description} {total}")

            class Task:
                def advance(self, amount=1):
                    return None

                def update(self, *, description=None, info=None):
                    seen.append(info or "")

                def close(self):
                    return None

            return Task()

    log = RURKLog()
    run_rurk(model, forget, retain, resolve_settings(batch_size=4, epochs=2, max_steps=7), progress=Recorder(), log=log)
    assert seen[0] == "start rurk 7" and log.steps == 7  # 2 epochs x 5 batches, capped at 7 steps
    assert seen[-1].startswith("step 7/7 CE retain") and "neighbour" in seen[-1]


def test_neighbour_generators():
    model, forget, retain = tiny()
    x, y = forget.x, forget.y
    gen = torch.Generator().manual_seed(0)
    settings = resolve_settings(tau=0.05, neighbour_draws=3)
    near, labels, sign = _neighbours(model, x, y, settings, gen, (0.0, 1.0), 3, torch.autocast("cpu", enabled=False))
    assert near.shape == (30, 6) and sign == -1.0 and torch.equal(labels, y.repeat(3))
    assert (near - x.repeat(3, 1)).abs().max() > 0
    for kind in ("targeted-fgsm", "targeted-pgd"):
        s = resolve_settings(tau=0.05, neighbours=kind)
        adv, targets, sign = _neighbours(model, x, y, s, gen, (0.0, 1.0), 3, torch.autocast("cpu", enabled=False))
        assert sign == 1.0 and (targets != y).all(), kind  # the term flips: +λ_a·CE(x', y'), y' ≠ y
        assert (adv - x).abs().max() <= 0.05 + 1e-6, kind
        before = F.cross_entropy(model(x), targets)
        after = F.cross_entropy(model(adv), targets)
        assert after < before, kind  # the step moves toward y'
    # vulnerable: of the candidates, the one the model most confidently still labels y
    s = resolve_settings(tau=0.2, neighbours="vulnerable", neighbour_draws=5)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    chosen, labels, sign = _neighbours(model, x, y, s, g1, None, 3, torch.autocast("cpu", enabled=False))
    candidates = x.unsqueeze(0) + 0.2 * torch.randn((5, *x.shape), generator=g2)
    with torch.no_grad():
        per = torch.stack([F.cross_entropy(model(c), y, reduction="none") for c in candidates])
        best = F.cross_entropy(model(chosen), y, reduction="none")
    torch.testing.assert_close(best, per.min(0).values)
    assert sign == -1.0 and torch.equal(labels, y)


@pytest.fixture(scope="module")
def digits():
    return (
        load_model(DIGITS / "original.safetensors", device="cpu"),
        load_samples(DIGITS / "forget.csv"),
        load_samples(DIGITS / "retain.csv"),
    )


@pytest.mark.training
@pytest.mark.parametrize("kind", ["gaussian", "targeted-fgsm", "targeted-pgd", "vulnerable"])
def test_rurk_is_deterministic_and_leaves_input_alone(digits, kind):
    model, forget, retain = digits
    before = sha256_state_dict(model)
    hp = {"neighbours": kind, "max_steps": 3, "pgd_steps": 3, "neighbour_draws": 2}
    a = unlearn("rurk", model, forget, retain, seed=4, **hp)
    b = unlearn("rurk", model, forget, retain, seed=4, **hp)
    c = unlearn("rurk", model, forget, retain, seed=5, **hp)
    assert sha256_state_dict(model) == before
    assert sha256_state_dict(a) == sha256_state_dict(b) != sha256_state_dict(c)
    assert a.meta.extra["method"] == "rurk" and json.loads(a.meta.extra["hparams"])["neighbours"] == kind


@pytest.mark.training
def test_rea_phases(digits):
    f = torch.eye(4)
    assert float(orthogonality_penalty(f)) == 0.0
    assert float(orthogonality_penalty(torch.ones(4, 3))) == pytest.approx(1.0)
    model, forget, retain = digits
    assert set(method_defaults("rea")) >= {"lambda_random", "lambda_orthogonal", "erase_epochs", "replay_epochs", "l1"}
    erased = unlearn("rea", model, forget, retain, seed=0, replay_epochs=0, erase_epochs=3, erase_lr=0.05)
    from unlearn_audit.inference import predict

    acc = lambda m, s: float((predict(m, s.x) == s.y).float().mean())  # noqa: E731
    assert acc(erased, forget) < acc(model, forget)  # phase 1 alone erases
    both = unlearn("rea", model, forget, retain, seed=0, erase_epochs=3, erase_lr=0.05, replay_epochs=1)
    assert acc(both, retain) > acc(erased, retain)  # phase 2 restores the retain set


def test_remediate_needs_retain_and_cli_bad_input(cli, tmp_path):
    from unlearn_audit.audit import Audit, AuditConfig

    audit = Audit(
        references=[DIGITS / "retrain-1.safetensors"],
        forget=DIGITS / "forget.csv",
        config=AuditConfig(probes=("gaussian",), taus=(0.0,), draws=2, bootstrap=200),
    )
    with pytest.raises(ConfigError, match="needs the retain set"):
        audit.remediate(DIGITS / "original.safetensors")
    args = ["--forget", DIGITS / "forget.csv", "--retain", DIGITS / "retain.csv"]
    assert_one_line_error(
        cli("remediate", DIGITS / "original.safetensors", *args, "-o", tmp_path / "x.pt", "--reference",
            DIGITS / "retrain-1.safetensors"),
        ".safetensors",
    )
    assert_one_line_error(
        cli("remediate", DIGITS / "original.safetensors", *args, "-o", tmp_path / "x.safetensors"), "--reference"
    )
    assert_one_line_error(
        cli("remediate", DIGITS / "original.safetensors", *args, "-o", tmp_path / "x.safetensors", "--reference",
            DIGITS / "retrain-1.safetensors", "--preset", "huge"),
        "preset 'huge'",
    )


def test_rea_defaults_come_from_its_settings_and_the_cli_overrides_them(cli, tmp_path):
    import dataclasses

    from unlearn_audit.remediation import ReASettings

    defaults = {f.name: f.default for f in dataclasses.fields(ReASettings)}
    assert method_defaults("rea") == defaults  # one place: the registry reads the dataclass
    out = tmp_path / "rea.safetensors"
    args = ["--forget", DIGITS / "forget.csv", "--retain", DIGITS / "retain.csv", "-o", out]
    params = ["--param", "erase_epochs=1", "--param", "replay-epochs=0", "--param", "erase_lr=0.02"]
    result = cli("unlearn", "rea", DIGITS / "original.safetensors", *args, *params)
    assert result.code == 0, result.err
    recorded = json.loads(load_model(out, device="cpu").meta.extra["hparams"])
    assert recorded == {**defaults, "erase_epochs": 1, "replay_epochs": 0, "erase_lr": 0.02}
    assert_one_line_error(
        cli("unlearn", "rea", DIGITS / "original.safetensors", *args, "--param", "erase_rate=1"),
        "unknown hyper-parameter(s) erase_rate",
    )
