"""The method zoo: every method runs behind one signature, never touches its input, records what it did."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import DIGITS, assert_one_line_error
from unlearn_audit import ConfigError, load_model, load_samples
from unlearn_audit.inference import predict
from unlearn_audit.io.hashing import sha256_state_dict
from unlearn_audit.unlearning import method_defaults, registered_methods, unlearn

FAST = {"epochs": 1}


@pytest.fixture(scope="module")
def digits():
    model = load_model(DIGITS / "original.safetensors", device="cpu")
    forget = load_samples(DIGITS / "forget.csv")
    retain = load_samples(DIGITS / "retain.csv")
    return model, forget, retain


def test_every_paper_baseline_is_registered():
    assert {"retrain", "gd", "ngd", "ga", "neggrad+", "eu-k", "cf-k", "scrub", "ssd", "fisher", "ntk", "cr"} <= set(
        registered_methods()
    )


@pytest.mark.training
@pytest.mark.parametrize("method", sorted(registered_methods()))
def test_method_runs_and_records_itself(digits, method):
    model, forget, retain = digits
    before = sha256_state_dict(model)
    overrides = {k: v for k, v in FAST.items() if k in method_defaults(method)}
    if method in ("retrain", "eu-k"):  # re-initialised weights need real training to be usable
        overrides = {"epochs": 15, "lr": 0.05}
    new = unlearn(method, model, forget, retain, seed=1, **overrides)
    assert sha256_state_dict(model) == before, "the input model must not change"
    assert new is not model and new.meta.extra["method"] == method
    assert json.loads(new.meta.extra["hparams"]) == {**method_defaults(method), **overrides}
    if method != "retrain":
        assert new.meta.extra["parent_sha256"] == model.meta.sha256
    assert torch.isfinite(new(forget.x[:4])).all()
    assert (predict(new, retain.x) == retain.y).float().mean() > 0.5


@pytest.mark.training
def test_methods_are_deterministic(digits):
    model, forget, retain = digits
    a = unlearn("ngd", model, forget, retain, seed=3, epochs=1)
    b = unlearn("ngd", model, forget, retain, seed=3, epochs=1)
    assert sha256_state_dict(a) == sha256_state_dict(b)


@pytest.mark.training
def test_forgetting_methods_lower_forget_accuracy(fmnist_dir):
    model = load_model(fmnist_dir / "original.safetensors", device="cpu")
    forget = load_samples(fmnist_dir / "forget.npz")
    retain = load_samples(fmnist_dir / "retain_subset.npz")
    base = float((predict(model, forget.x) == forget.y).float().mean())
    for method, hp in (("ga", {"lr": 0.002, "epochs": 2}), ("cr", {}), ("ntk", {}), ("ssd", {"selection": 2.0})):
        new = unlearn(method, model, forget, retain, seed=0, **hp)
        assert float((predict(new, forget.x) == forget.y).float().mean()) < base, method


def test_unknown_method_and_hparam(digits):
    model, forget, retain = digits
    with pytest.raises(ConfigError, match="unknown unlearning method 'magic'"):
        unlearn("magic", model, forget, retain)
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        unlearn("gd", model, forget, retain, lrr=0.1)


@pytest.mark.training
def test_unlearn_cli(cli, tmp_path):
    out = tmp_path / "cf.safetensors"
    args = ["--forget", DIGITS / "forget.csv", "--retain", DIGITS / "retain.csv"]
    result = cli(
        "unlearn", "cf-k", DIGITS / "original.safetensors", *args, "-o", out, "--param", "epochs=1", "--param", "k=2"
    )
    assert result.code == 0, result.err
    saved = load_model(out, device="cpu")
    assert saved.meta.extra["method"] == "cf-k" and json.loads(saved.meta.extra["hparams"])["k"] == 2
    assert_one_line_error(
        cli("unlearn", "gd", DIGITS / "original.safetensors", *args, "-o", out, "--param", "zz=1"),
        "unknown hyper-parameter(s) zz",
    )
    assert_one_line_error(
        cli("unlearn", "gd", DIGITS / "original.safetensors", *args, "-o", tmp_path / "x.pt"), ".safetensors"
    )
    assert_one_line_error(
        cli("unlearn", "gd", DIGITS / "original.safetensors", *args, "-o", out, "--param", "oops"), "name=value"
    )
