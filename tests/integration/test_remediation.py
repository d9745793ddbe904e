"""The verify loop on the bundled models: remediation turns residual knowledge into pass, and proves it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DIGITS, FMNIST
from unlearn_audit import load_model
from unlearn_audit.audit import Audit, AuditConfig

# A reduced audit (like the demo's): the Gaussian probe (the neighbourhood RURK trains on), 3 τ values, 10 draws,
# 500 bootstrap resamples; three held-out retrains judge. docs/remediation.md explains why FGSM is not counted here.
CONFIG = AuditConfig(probes=("gaussian",), taus=(0.0, 4 / 255, 8 / 255), draws=10, seed=0, bootstrap=500)
# λ_a per model, as found by the verify loop's search (benchmarks/remediation.py --count-probes gaussian). Each
# sits in a narrow pass window (GD passes at λ_a 0.0495, R 1.016, and at 0.0515, R 1.000; the original's edges
# are in docs/remediation.md), but the window does not move with the CPU: under ATEN_CPU_CAPABILITY=default, avx2
# and avx512 (and, for gd, oneDNN capped at AVX2) R_gauss came out 1.0064 (gd) and 1.0039 (original) every time
# (docs/testing.md); the interval clears the band's edges by at least 0.0096 where the kernels moved R by < 0.0001.
# The done-when still does not balance on that edge: the verify loop's search starts there, costs nothing more
# where the value passes, and walks back into the window (bisection, ≤ 10 trials) on a machine that moves it.
FOUND = {"original": 0.064, "gd": 0.0505}


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.parametrize("subject", sorted(FOUND))
def test_rurk_turns_residual_knowledge_into_pass(subject):
    audit = Audit(
        references=[FMNIST / f"retrain-{i}.safetensors" for i in (2, 3, 4)], forget=FMNIST / "forget.npz", config=CONFIG
    )
    result = audit.remediate(
        FMNIST / f"{subject}.safetensors",
        retain=FMNIST / "retain_subset.npz",
        test=FMNIST / "test.npz",
        lambda_neighbour=FOUND[subject],
        search=True,
    )
    assert result.before.verdict.kind == "residual_knowledge"
    assert result.after.verdict.kind == "pass", result.summary()
    assert result.retain_drop_points <= 2.0 and result.success and result.exit_code == 0
    data = json.loads(result.to_json())
    assert data["kind"] == "remediation" and data["success"] is True and data["method"] == "rurk"
    trials = data["trials"]
    assert trials[0]["hyperparameters"]["lambda_neighbour"] == FOUND[subject]  # the search starts at the found λ_a
    assert trials[-1]["success"] and not any(t["success"] for t in trials[:-1])  # and stops at its first success
    assert data["hyperparameters"] == trials[-1]["hyperparameters"]
    assert data["before"]["config"] == data["after"]["config"] and data["before"]["verdict"] == "residual_knowledge"
    assert data["retain_acc"]["after"] >= data["retain_acc"]["before"] - 0.02


@pytest.mark.training
def test_cli_remediate_writes_model_and_json(cli, tmp_path):
    out, report = tmp_path / "fixed.safetensors", tmp_path / "fixed.json"
    result = cli(
        "remediate", DIGITS / "gd.safetensors", "--forget", DIGITS / "forget.csv", "--retain", DIGITS / "retain.csv",
        "--reference", DIGITS / "retrain-1.safetensors", "--reference", DIGITS / "retrain-2.safetensors",
        "--test", DIGITS / "test.csv", "--probes", "gaussian,fgsm", "--count-probes", "gaussian", "--taus", "0,0.03", "--draws", "4",
        "--param", "max_steps=5", "-o", out, "--json", report, "--report", tmp_path / "rep", "--format", "html,md",
    )  # fmt: skip
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Before" in html and "After" in html and (tmp_path / "rep" / "report.md").exists()
    data = json.loads(report.read_text())
    assert result.code == (0 if data["success"] else 1), result.err
    assert data["kind"] == "remediation" and data["method"] == "rurk"
    assert set(data) >= {"hyperparameters", "input_sha256", "before", "after", "retain_acc", "test_acc", "trials"}
    assert data["hyperparameters"]["max_steps"] == 5 and data["hyperparameters"]["lambda_neighbour"] == 0.03
    assert data["before"]["config"] == data["after"]["config"]  # the same audit, re-run
    assert data["after"]["policy"]["probes"] == ["gaussian"] and set(data["after"]["probes"]) == {"gaussian", "fgsm"}
    assert data["test_acc"]["after"] is not None and len(data["trials"]) == 1
    saved = load_model(out, device="cpu")
    original = load_model(DIGITS / "gd.safetensors", device="cpu")
    assert saved.meta.extra["method"] == "rurk" and saved.meta.extra["parent_sha256"] == original.meta.sha256
    assert json.loads(saved.meta.extra["hparams"])["max_steps"] == 5
    assert data["input_sha256"] == original.meta.sha256
