"""``--engine art``: ART's attacks give the same counts (random probes, FGSM) or the same rates (PGD) as ours."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import FMNIST, assert_one_line_error
from unlearn_audit import load_samples
from unlearn_audit.audit import AuditConfig
from unlearn_audit.errors import ConfigError
from unlearn_audit.io.models import load_model
from unlearn_audit.probes import EngineConfig, ProbeCounts, make_engine, make_probe
from unlearn_audit.probes.art_engine import ArtEngine

N = 80
TAUS = (0.0, 2 / 255, 8 / 255, 0.1)
CFG = EngineConfig(taus=TAUS, draws=8, seed=5, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def setup():
    models = [load_model(FMNIST / "original.safetensors"), load_model(FMNIST / "retrain-1.safetensors")]
    forget = load_samples(FMNIST / "forget.npz")
    samples = forget.subset(range(N), source=forget.source)
    fused = make_engine(models, samples, CFG)
    art = make_engine(models, samples, dataclasses.replace(CFG, engine="art"))
    return fused, art


@pytest.fixture(scope="module")
def small():
    """Iterative attacks are costly through ART: fewer samples, one τ, crafted on the audited model only."""
    models = [load_model(FMNIST / "original.safetensors"), load_model(FMNIST / "retrain-1.safetensors")]
    forget = load_samples(FMNIST / "forget.npz")
    samples = forget.subset(range(40), source=forget.source)
    cfg = dataclasses.replace(CFG, taus=(0.0, 8 / 255), craft_on_references=False)
    return make_engine(models, samples, cfg), make_engine(models, samples, dataclasses.replace(cfg, engine="art"))


def _rate(counts: ProbeCounts, model: int = 0) -> np.ndarray:
    return counts.correct[counts.block(model), model].sum(0) / (counts.correct.shape[2] * counts.draws)


def test_make_engine_returns_the_art_engine(setup):
    fused, art = setup
    assert type(fused).__name__ == "Engine" and isinstance(art, ArtEngine)
    assert art.precision == "fp32" and "art" in art.precision_decision.reason


@pytest.mark.parametrize("probe", ["gaussian", "uniform-linf"])
def test_random_probes_give_identical_counts(setup, probe):
    fused, art = setup
    a, b = fused.run(make_probe(probe)), art.run(make_probe(probe))
    np.testing.assert_array_equal(a.correct, b.correct)
    np.testing.assert_array_equal(a.disagree, b.disagree)


@pytest.mark.parametrize("probe", ["fgsm-untargeted", "fgsm"])
def test_fgsm_agrees_with_the_fused_engine(setup, probe):
    """Same keyed targets, same signed step: robust accuracy per τ within 1 pp (in practice identical)."""
    fused, art = setup
    a, b = fused.run(make_probe(probe)), art.run(make_probe(probe))
    assert a.probe == b.probe and a.correct.shape == b.correct.shape
    for model in range(2):
        np.testing.assert_allclose(_rate(a, model), _rate(b, model), atol=0.01)
    assert abs(a.disagree.mean() - b.disagree.mean()) / a.draws < 0.01


def test_pgd_agrees_statistically(small):
    """ART's random starts are not keyed like ours, so PGD agrees in rate, not draw by draw."""
    fused, art = small
    a, b = fused.run(make_probe("pgd-untargeted"), draws=4), art.run(make_probe("pgd-untargeted"), draws=4)
    np.testing.assert_allclose(_rate(a), _rate(b), atol=0.05)
    again = art.run(make_probe("pgd-untargeted"), draws=4)
    np.testing.assert_array_equal(b.correct, again.correct)  # reproducible for a given seed and batch size


def test_autopgd_runs_on_art_only(small):
    fused, art = small
    counts = art.run(make_probe("autopgd-untargeted"), draws=2)
    rate = _rate(counts)
    assert rate[0] == pytest.approx(_rate(fused.run(make_probe("gaussian")))[0])  # τ = 0 is clean accuracy
    assert rate[1] < rate[0]
    pgd = _rate(fused.run(make_probe("pgd-untargeted"), draws=2))
    assert rate[-1] <= pgd[-1] + 0.05  # AutoPGD is at least about as strong as PGD-10
    with pytest.raises(ConfigError, match="--engine art"):
        fused.run(make_probe("autopgd"))
    with pytest.raises(ConfigError, match="--engine art"):
        AuditConfig(probes=("gaussian", "autopgd"))
    AuditConfig(probes=("gaussian", "autopgd"), engine="art")


def test_art_engine_rejects_low_precision():
    models = [load_model(FMNIST / "original.safetensors")]
    samples = load_samples(FMNIST / "forget.npz")
    with pytest.raises(ConfigError, match="fp32"):
        make_engine(models, samples, dataclasses.replace(CFG, engine="art", precision="bf16"))


def test_cli_check_with_the_art_engine(cli, tmp_path):
    forget = tmp_path / "forget.npz"
    s = load_samples(FMNIST / "forget.npz")
    np.savez(forget, x=s.x[:60].numpy(), y=s.y[:60].numpy())
    common = ["--forget", forget, "--reference", FMNIST / "retrain-2.safetensors"]
    common += ["--reference", FMNIST / "retrain-3.safetensors", "--taus", "0:8/255:3", "--bootstrap", "300"]
    result = cli(
        "check",
        FMNIST / "original.safetensors",
        *common,
        "--probes",
        "gaussian,fgsm",
        "--draws",
        "4",
        "--engine",
        "art",
        "--json",
        tmp_path / "r.json",
    )
    assert result.code in (0, 1, 3), result.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["config"]["engine"] == "art"
    assert set(report["probes"]) == {"gaussian", "fgsm"}
    bad = cli("check", FMNIST / "original.safetensors", *common, "--probes", "autopgd")
    assert_one_line_error(bad, "autopgd", "--engine art")
