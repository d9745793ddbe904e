"""``check http://…/v2/models/NAME`` end to end against MLServer serving the bundled fmnist-small original model:
the Gaussian verdict and counts equal the local audit of the same weights with the same seed, the report names
the endpoint, each probe's access mode and the queries used, and fgsm runs as a transfer probe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import FMNIST
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io.remote import RemoteModel, RemoteSettings
from unlearn_audit.io.remote.subject import remote_auditable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REFS = [FMNIST / "retrain-1.safetensors", FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]
N = 120  # forget samples: enough for the noise to change some answers, small enough for a shared CPU


@pytest.fixture(scope="module")
def forget_subset(tmp_path_factory):
    full = np.load(FMNIST / "forget.npz")
    path = tmp_path_factory.mktemp("forget") / "forget-subset.npz"
    np.savez(path, x=full["x"][:N], y=full["y"][:N], ids=full["ids"][:N])
    return path


def audit_args(model, forget, out, *extra):
    return [
        "check", model, "--forget", forget, "--reference", REFS[0], "--reference", REFS[1],
        "--probes", "gaussian", "--taus", "0,4/255,8/255", "--draws", "12", "--seed", "11",
        "--precision", "fp32", "--device", "cpu", "--bootstrap", "200", "--panel", "none", "--json", out, *extra,
    ]  # fmt: skip


def test_remote_check_equals_the_local_check(cli, mlserver, forget_subset, tmp_path, monkeypatch):
    """The done-when check: same verdict, estimates, intervals, flags (all functions of the counts) and exit code."""
    monkeypatch.setenv("AUDIT_TOKEN", "s3cret-token-never-written")
    local = cli(*audit_args(FMNIST / "original.safetensors", forget_subset, tmp_path / "local.json"))
    remote = cli(
        *audit_args(
            mlserver.url("fmnist"), forget_subset, tmp_path / "remote.json",
            "--work-dir", tmp_path / "work", "--max-queries", "20000", "--token-env", "AUDIT_TOKEN",
            "--report", tmp_path / "report",
        )
    )  # fmt: skip
    assert remote.code == local.code and remote.code in (0, 1, 3), remote.err
    a = json.loads((tmp_path / "local.json").read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "remote.json").read_text(encoding="utf-8"))
    assert b["verdict"] == a["verdict"] and b["reason"] == a["reason"]
    assert b["probes"]["gaussian"]["taus"] == a["probes"]["gaussian"]["taus"]
    assert b["probes"]["gaussian"]["pooled"] == a["probes"]["gaussian"]["pooled"]
    assert b["flagged_samples"] == a["flagged_samples"]
    assert b["probes"]["gaussian"]["access"] == "predictions-only"
    # the report names the endpoint, the access modes and the queries used; never the token
    remote_section = b["remote"]
    (endpoint,) = remote_section["endpoints"]
    assert endpoint["endpoint"] == mlserver.url("fmnist") and endpoint["role"] == "model"
    assert endpoint["output_kind"] == "logits" and remote_section["access"] == {"gaussian": "predictions-only"}
    unique = N * (1 + 2 * 12)  # clean rows once, 12 draws at each of the two τ > 0
    assert endpoint["usage"]["unique_rows"] >= unique
    assert unique <= remote_section["queries_used"] == endpoint["usage"]["rows_sent"] <= 20000
    assert endpoint["settings"]["token_env"] == "AUDIT_TOKEN"
    assert "s3cret-token-never-written" not in (tmp_path / "remote.json").read_text(encoding="utf-8")
    assert "remote" not in a
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    used = remote_section["queries_used"]
    assert f"- served model: `{mlserver.url('fmnist')}` (logits), {used} queries sent of at most 20000" in markdown
    assert f"- probe access: gaussian: predictions-only; {used} queries in all" in markdown
    assert mlserver.url("fmnist") in html and 'id="probe-access">gaussian: predictions-only' in html
    for text in (markdown, html):
        assert "s3cret-token-never-written" not in text
    # the same command again resumes from the work directory: the same report, and no query is sent again
    again = cli(
        *audit_args(
            mlserver.url("fmnist"), forget_subset, tmp_path / "again.json",
            "--work-dir", tmp_path / "work", "--max-queries", "20000", "--token-env", "AUDIT_TOKEN",
        )
    )  # fmt: skip
    c = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert again.code == remote.code and c["probes"] == b["probes"] and c["remote"]["queries_used"] == 0
    assert c["remote"]["endpoints"][0]["usage"]["cache_hits"] > 0


def test_remote_gaussian_counts_equal_local_counts_through_the_audit(mlserver, forget_subset):
    """The per-sample count arrays themselves (the audit API), not only the statistics derived from them."""
    config = AuditConfig(probes=("gaussian",), taus=(0.0, 4 / 255, 8 / 255), draws=12, seed=11, panel="none",
                         precision="fp32", device="cpu", bootstrap=200)  # fmt: skip
    forget = load_samples(forget_subset)
    local = Audit(FMNIST / "original.safetensors", references=REFS[:2], forget=forget, config=config).run()
    with RemoteModel(mlserver.url("fmnist"), RemoteSettings(seed=11)) as client:
        served = Audit(remote_auditable(client), references=REFS[:2], forget=forget, config=config).run()
    assert served.verdict.kind == local.verdict.kind
    mine, theirs = served.counts["gaussian"], local.counts["gaussian"]
    assert np.array_equal(mine.correct, theirs.correct) and np.array_equal(mine.disagree, theirs.disagree)
    u = mine.correct[0, 0]
    assert ((u > 0) & (u < 12)).any()  # the noise changed some answers: the equality is not trivial


def test_fgsm_runs_as_a_symmetric_transfer_probe_against_a_served_model(cli, mlserver, forget_subset, tmp_path):
    """Crafted on the first local reference (left out of the comparison), seen by the served model and the
    other references alike; the JSON says so, and the query count is what the transfer rows cost."""
    args = audit_args(mlserver.url("fmnist"), forget_subset, tmp_path / "r.json", "--reference", REFS[2])
    args[args.index("gaussian")] = "fgsm"
    args[args.index("12")] = "3"
    result = cli(*args)
    assert result.code in (0, 1, 3), result.err
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    fgsm = doc["probes"]["fgsm"]
    assert fgsm["access"] == "transfer" and fgsm["surrogate"] == "retrain-1" and fgsm["adversarial"] is True
    assert fgsm["null_band"]["method"] == "leave-one-out over 2 references"  # retrain-2 and retrain-3
    assert any("transfer probes" in note and "retrain-1" in note for note in doc["notes"])
    assert doc["remote"]["access"] == {"fgsm": "transfer"} and doc["remote"]["surrogate"] == "retrain-1"
    # at most one row per (sample, τ > 0, draw); fgsm's targeted rows repeat when targets repeat (cached)
    assert N <= doc["remote"]["queries_used"] <= N * (1 + 2 * 3) * 1.05
