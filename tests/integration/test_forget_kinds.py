"""The three kinds of forget set an auditor meets: part of a class (the bundled reference models), random samples
across classes, and a whole class, which retrained references never predict (R is undefined; the audit tests
the excess recognition rate D = p_m − p_ā instead). Models are small CNNs trained on scikit-learn's digits in
about a second each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io.architectures import build_architecture
from unlearn_audit.io.datasets import open_dataset
from unlearn_audit.io.models import AuditableModel, save_model, wrap_model
from unlearn_audit.io.samples import samples_from_tensors
from unlearn_audit.training import TrainConfig, train_classifier

pytestmark = [pytest.mark.slow, pytest.mark.training]  # every model here is trained in the test

CONFIG = AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 0.02, 0.04), draws=10, bootstrap=500, seed=0)
TRAIN = TrainConfig(epochs=30, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=64, seed=0)


def _digits():
    ds = open_dataset("digits")
    x = torch.from_numpy(ds.take(np.arange(len(ds.labels)))).reshape(-1, 1, 8, 8)
    return x, torch.from_numpy(ds.labels).long()


def _fit(x: torch.Tensor, y: torch.Tensor, rows: np.ndarray, seed: int, name: str) -> AuditableModel:
    torch.manual_seed(seed)
    net = build_architecture("small-cnn", 10, (1, 8, 8))
    train_classifier(net, x[rows], y[rows], TrainConfig(**{**TRAIN.__dict__, "seed": seed}))
    return wrap_model(net, name=name, num_classes=10, input_shape=(1, 8, 8))


def _scenario(kind: str):
    x, y = _digits()
    rng = np.random.default_rng(0)
    train = rng.permutation(len(y))[:1400]
    forget = train[y[train].numpy() == 3] if kind == "whole-class" else np.sort(rng.choice(train, 140, replace=False))
    retain = np.setdiff1d(train, forget)
    original = _fit(x, y, train, 0, "original")
    retrains = [_fit(x, y, retain, s, f"retrain-{s}") for s in (1, 2, 3, 4)]
    samples = samples_from_tensors(x[forget], y[forget], [f"digits:{i}" for i in forget])
    return original, retrains, samples


@pytest.fixture(scope="module")
def whole_class():
    return _scenario("whole-class")


@pytest.fixture(scope="module")
def random_samples():
    return _scenario("random")


def test_whole_class_uses_the_excess_rate(whole_class):
    original, retrains, forget = whole_class
    audit = Audit(references=retrains[1:], forget=forget, config=CONFIG)
    results = audit.run_many({"original": original, "retrain": retrains[0]})
    kept, honest = results["original"], results["retrain"]
    for result in results.values():
        for probe in result.probes.values():
            assert probe.statistic == "excess"
            assert not np.isfinite(probe.pooled.value)  # R = Σu/Σv̄ with Σv̄ = 0
    assert kept.verdict.kind == "residual_knowledge", kept.summary()
    assert "never learned" in kept.verdict.reason
    assert all(p.excess is not None and p.excess.lo > 0.5 for p in kept.probes.values())
    assert honest.verdict.kind == "pass", honest.summary()
    doc = json.loads(kept.to_json())  # undefined R is null in the JSON, never NaN
    assert doc["probes"]["gaussian"]["statistic"] == "excess"
    assert doc["probes"]["gaussian"]["pooled"]["value"] is None
    assert doc["probes"]["gaussian"]["verdict"]["evidence"]["D"]["lo"] > 0.5


def test_whole_class_through_the_cli(whole_class, cli, tmp_path):
    original, retrains, forget = whole_class
    paths = {}
    for model in (original, *retrains):
        paths[model.meta.name] = save_model(model, tmp_path / f"{model.meta.name}.safetensors")
    np.savez(tmp_path / "forget.npz", x=forget.x.numpy(), y=forget.y.numpy())
    common = ["--forget", tmp_path / "forget.npz", "--probes", "gaussian", "--taus", "0,0.02", "--draws", "8"]
    refs = [a for i in (2, 3, 4) for a in ("--reference", tmp_path / f"retrain-{i}.safetensors")]
    kept = cli(
        "check",
        tmp_path / "original.safetensors",
        *common,
        *refs,
        "--json",
        tmp_path / "o.json",
        "--report",
        tmp_path / "report",
        "--no-thumbnails",
    )
    assert kept.code == 1, kept.out + kept.err
    assert "D = " in kept.out
    assert "D = " in (tmp_path / "report" / "report.md").read_text()  # the report validated against the schema
    assert "D = " in (tmp_path / "report" / "report.html").read_text()
    honest = cli("check", tmp_path / "retrain-1.safetensors", *common, *refs)
    assert honest.code == 0, honest.out + honest.err
    assert json.loads((tmp_path / "o.json").read_text())["verdict"] == "residual_knowledge"


def test_random_samples_across_classes(random_samples):
    original, retrains, forget = random_samples
    assert len(np.unique(forget.y.numpy())) == 10
    audit = Audit(references=retrains[1:], forget=forget, config=CONFIG)
    results = audit.run_many({"original": original, "retrain": retrains[0]})
    honest, kept = results["retrain"], results["original"]
    # An honest retrain draws no finding and its R sits inside the null band. Not "pass" itself: its FGSM interval
    # clears the band's lower edge by only 0.007-0.015, and other CPU kernels moved that edge case by 0.008
    # (docs/testing.md). R itself sits at least 0.025 inside the band on every kernel set measured.
    assert honest.verdict.kind in ("pass", "inconclusive"), honest.summary()
    for probe in honest.probes.values():
        assert probe.band.lo <= probe.pooled.value <= probe.band.hi, honest.summary()
    for name, probe in kept.probes.items():
        assert probe.statistic == "R"
        # digits generalise well, so little is left to find; still, the original sits above the honest retrain
        assert probe.pooled.value > honest.probes[name].pooled.value
    assert kept.verdict.kind != "over_unlearning", kept.summary()
