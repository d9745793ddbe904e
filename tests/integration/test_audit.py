"""The core audit on the bundled reference models: verdicts, determinism, screening, the CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FMNIST, assert_one_line_error
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.demo import EXPECTED, REMEDIATION_HPARAMS, run_demo

REFS = [FMNIST / f"retrain-{i}.safetensors" for i in (2, 3, 4)]
SMALL = AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 4 / 255, 8 / 255), draws=10, bootstrap=500, seed=3)


@pytest.fixture(scope="module")
def demo_outcome(tmp_path_factory):
    return run_demo(FMNIST.parent, tmp_path_factory.mktemp("demo"), device="cpu")


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.parametrize("name", list(EXPECTED))
def test_four_cases_on_reference_models(demo_outcome, name):
    """Held-out retrain passes; original and GD keep residual knowledge; GA over-unlearns (K = 3 references)."""
    result = demo_outcome.results[name]
    assert result.verdict.kind == EXPECTED[name], result.summary()
    assert set(result.probes) == {"gaussian", "fgsm", "pgd"}


@pytest.mark.slow
@pytest.mark.training
def test_demo_writes_reports(demo_outcome):
    summary = json.loads(demo_outcome.files["summary"].read_text())
    assert set(summary) == {*EXPECTED, "remediation-gd"}
    report = json.loads(demo_outcome.files["original"].read_text())
    assert report["verdict"] == "residual_knowledge" and len(report["references"]) == 3
    assert "residual_knowledge" in demo_outcome.files["gd-report"].read_text()  # the HTML report


@pytest.mark.slow
@pytest.mark.training
def test_demo_closes_the_loop_with_remediation(demo_outcome):
    """GD is remediated with RURK and re-audited: residual knowledge becomes pass within the retain budget."""
    fix = demo_outcome.remediation
    assert fix is not None and fix.before.verdict.kind == "residual_knowledge"
    assert fix.after.verdict.kind == "pass" and fix.success, fix.summary()
    assert fix.trials[0]["hyperparameters"]["lambda_neighbour"] == REMEDIATION_HPARAMS["lambda_neighbour"]
    assert "After" in demo_outcome.files["remediation-gd"].read_text()


def _small_audit(**overrides) -> Audit:
    config = AuditConfig(**{**SMALL.__dict__, **overrides})
    # no disk cache: each audit computes its reference side (tests/integration/test_reference_cache.py tests reuse)
    return Audit(references=REFS[:2], forget=_forget_subset(), config=config, command="test", cache_dir=False)


def _forget_subset(n: int = 120):
    forget = load_samples(FMNIST / "forget.npz")
    return forget.subset(range(n), source=forget.source)


def _strip_time(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report["provenance"].pop("time")
    report["provenance"].pop("reference_cache")  # its keys name the batch size (the cache is conservative)
    return report


def test_json_is_byte_identical_for_same_inputs_and_seed():
    r1 = _small_audit().run(FMNIST / "original.safetensors")
    first = r1.to_json()
    second = _small_audit().run(FMNIST / "original.safetensors").to_json()
    a, b = json.loads(first), json.loads(second)
    assert set(a["provenance"]["time"]) == {"started", "finished", "seconds"}
    a["provenance"]["time"] = b["provenance"]["time"] = None
    assert json.dumps(a) == json.dumps(b)
    third = _small_audit(seed=4).run(FMNIST / "original.safetensors")
    assert not np.array_equal(third.counts["gaussian"].correct, r1.counts["gaussian"].correct)


def test_result_does_not_depend_on_batch_size():
    reports = []
    for batch in (7, 64):
        report = _strip_time(_small_audit(batch_size=batch).run(FMNIST / "original.safetensors").to_dict())
        report["config"].pop("batch_size")
        reports.append(report)
    assert reports[0] == reports[1]


def test_json_keys_are_the_documented_ones():
    report = _small_audit().run(FMNIST / "original.safetensors").to_dict()
    for key in (
        "schema_version",
        "verdict",
        "reason",
        "probes",
        "null_band",
        "flagged_samples",
        "references",
        "config",
        "seed",
        "versions",
        "hashes",
        "policy",
        "provenance",
        "precision",
        "sample_evidence",
    ):
        assert key in report, key
    row = report["probes"]["gaussian"]["taus"][0]
    for key in ("tau", "R", "R_ci", "r_paper", "n_undefined", "frac_u_gt_v", "p_m", "p_a", "disagreement", "bounds"):
        assert key in row, key
    assert report["hashes"]["model"] == report["model"]["sha256"] and len(report["hashes"]["reference_1"]) == 64
    assert row["tau"] == 0.0 and row["R_ci"][0] <= row["R"] <= row["R_ci"][1]
    gauss = report["probes"]["gaussian"]
    assert gauss["null_band"]["method"].startswith("leave-one-out over 2")
    for t in gauss["taus"]:
        assert (
            t["bounds"]["lower"]["value"] - 1e-9 <= t["disagreement"]["value"] <= t["bounds"]["upper"]["value"] + 1e-9
        )


def test_tau_zero_is_clean_accuracy():
    from unlearn_audit import load_model
    from unlearn_audit.inference import predict

    forget = _forget_subset()
    report = _small_audit().run(FMNIST / "original.safetensors").to_dict()
    clean = float(
        (predict(load_model(FMNIST / "original.safetensors", device="cpu"), forget.x) == forget.y).float().mean()
    )
    assert report["probes"]["gaussian"]["taus"][0]["p_m"]["value"] == pytest.approx(clean)
    assert report["probes"]["fgsm"]["taus"][0]["p_m"]["value"] == pytest.approx(clean)


def test_holdout_adds_r_norm():
    audit = Audit(
        references=REFS[:2],
        forget=_forget_subset(200),
        holdout=FMNIST / "test.npz",
        config=AuditConfig(**{**SMALL.__dict__, "probes": ("gaussian",)}),
    )
    result = audit.run(FMNIST / "original.safetensors")
    probe = result.probes["gaussian"]
    assert probe.pooled_norm is not None and probe.pooled_norm.value > 1.0
    assert all(row.R_norm is not None for row in probe.taus)


def test_reference_free_screening():
    config = AuditConfig(**{**SMALL.__dict__, "probes": ("gaussian",)})
    original = Audit(forget=FMNIST / "forget.npz", holdout=FMNIST / "test.npz", config=config).run(
        FMNIST / "original.safetensors"
    )
    retrain = Audit(forget=FMNIST / "forget.npz", holdout=FMNIST / "test.npz", config=config).run(
        FMNIST / "retrain-1.safetensors"
    )
    r_orig = original.screening["gaussian"].pooled
    r_retrain = retrain.screening["gaussian"].pooled
    assert r_orig.value > r_retrain.value
    assert original.verdict.kind in ("residual_knowledge", "inconclusive")
    assert retrain.verdict.kind == "inconclusive"  # screening can never pass a model
    assert any("screening" in note.lower() for note in retrain.notes)
    assert original.to_dict()["mode"] == "screening"


def test_single_reference_uses_margin_and_says_so():
    audit = Audit(references=REFS[:1], forget=_forget_subset(), config=SMALL)
    result = audit.run(FMNIST / "retrain-1.safetensors")
    assert result.probes["gaussian"].band.method.startswith("fixed margin")
    assert result.probes["fgsm"].band.method.startswith("swap")
    assert any("second reference" in n for n in result.notes)


def test_in_memory_models_and_tensors():
    from unlearn_audit import load_model

    forget = _forget_subset()
    audit = Audit(
        load_model(FMNIST / "gd.safetensors", device="cpu").net,
        references=[load_model(p, device="cpu") for p in REFS[:2]],
        forget=(forget.x, forget.y),
        config=AuditConfig(**{**SMALL.__dict__, "probes": ("gaussian",)}),
    )
    result = audit.run()
    assert (
        result.model.sha256
        and result.forget.sha256 is None
        and result.verdict.kind in ("residual_knowledge", "inconclusive")
    )


# ------------------------------------------------------------------------------------------------------- CLI

CHECK = ["check", "--probes", "gaussian,fgsm", "--draws", "5", "--taus", "0:8/255:3", "--bootstrap", "300"]


def test_cli_exit_codes(cli, tmp_path):
    refs = [a for r in REFS for a in ("--reference", r)]
    forget = FMNIST / "forget.npz"
    ok = cli(
        *CHECK[:1],
        FMNIST / "retrain-1.safetensors",
        "--forget",
        forget,
        *refs,
        *CHECK[1:],
        "--json",
        tmp_path / "r.json",
    )
    assert ok.code == 0, ok.out + ok.err
    assert "verdict: pass" in ok.out and json.loads((tmp_path / "r.json").read_text())["verdict"] == "pass"
    finding = cli(*CHECK[:1], FMNIST / "original.safetensors", "--forget", forget, *refs, *CHECK[1:])
    assert finding.code == 1 and "residual_knowledge" in finding.out
    few = tmp_path / "few.npz"
    s = load_samples(forget)
    np.savez(few, x=s.x[:10].numpy(), y=s.y[:10].numpy())
    unclear = cli(*CHECK[:1], FMNIST / "original.safetensors", "--forget", few, *refs, *CHECK[1:])
    assert unclear.code == 3 and "too few" in unclear.out


def test_cli_input_errors(cli):
    model, forget = FMNIST / "original.safetensors", FMNIST / "forget.npz"
    ref = ["--reference", REFS[0]]
    assert_one_line_error(cli("check", model, "--forget", forget), "--reference", "--holdout")
    assert_one_line_error(cli("check", model, "--forget", forget, *ref, "--taus", "0:x:3"), "--taus")
    assert_one_line_error(cli("check", model, "--forget", forget, *ref, "--taus", "-0.1,0.2"), "--taus")
    assert_one_line_error(
        cli("check", model, "--forget", forget, *ref, "--probes", "gaussian,magic"), "unknown probe 'magic'"
    )
    assert_one_line_error(cli("check", model, "--forget", forget, *ref, "--draws", "pgd=0"), "--draws pgd=0")
    assert_one_line_error(
        cli("check", model, "--forget", forget, *ref, "--draws", "fgsm=5", "--probes", "gaussian"), "not among --probes"
    )
    assert_one_line_error(cli("check", model, "--forget", forget, *ref, "--alpha", "2"), "alpha")
    assert_one_line_error(cli("check", model, "--forget", Path("nope.csv"), *ref), "nope.csv", "no such file")


def test_cli_holdout_without_the_forget_classes(cli, tmp_path):
    test = load_samples(FMNIST / "test.npz")
    keep = (test.y != 0).nonzero().flatten()
    np.savez(tmp_path / "holdout.npz", x=test.x[keep].numpy(), y=test.y[keep].numpy())
    result = cli(
        "check",
        FMNIST / "original.safetensors",
        "--forget",
        FMNIST / "forget.npz",
        "--holdout",
        tmp_path / "holdout.npz",
        "--probes",
        "gaussian",
    )
    assert_one_line_error(result, "holdout.npz", "class(es) [0]")


def test_auditing_never_renames_the_callers_models():
    """run_many names results by its keys; the caller's own model object keeps its name."""
    from unlearn_audit import load_model

    model = load_model(FMNIST / "gd.safetensors", device="cpu")
    name = model.meta.name
    results = _small_audit(probes=("gaussian",)).run_many({"candidate": model})
    assert results["candidate"].model.name == "candidate" and model.meta.name == name
