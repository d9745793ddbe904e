"""Compliance reports: the versioned JSON and its schema, migration, HTML, Markdown, the report command,
remediation before/after documents, the unlearning panel and bad input."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import FMNIST, REPO, assert_one_line_error
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.errors import SchemaError
from unlearn_audit.report import SCHEMA_VERSION, load_report, migrate, prepare, render, write_report
from unlearn_audit.report.json import provenance_files, schema

FIXTURE_V1_0 = REPO / "tests" / "fixtures" / "report-v1.0.json"
TINY = AuditConfig(probes=("gaussian",), taus=(0.0, 4 / 255), draws=4, bootstrap=200, seed=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_audit(models: dict, n: int = 60) -> dict:
    forget = load_samples(FMNIST / "forget.npz")
    audit = Audit(
        references=[FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"],
        forget=forget.subset(range(n), source=forget.source),
        config=TINY,
        command="test",
    )
    results = audit.run_many(models)  # keyed by the models' own names (file stems for paths)
    return {name: r.to_dict() for name, r in zip(models, results.values(), strict=True)}


@pytest.fixture(scope="module")
def tiny() -> dict:
    """Two real audit dicts from one pass: GD (kept knowledge) and an honest retrain."""
    return _tiny_audit({"gd": FMNIST / "gd.safetensors", "retrain-1": FMNIST / "retrain-1.safetensors"})


# ------------------------------------------------------------------------------------------- check --report
def test_check_writes_three_reports_that_validate(report_run):
    assert report_run.code == 1  # the original model keeps residual knowledge
    files = {p.name for p in report_run.report_dir.iterdir()}
    assert files == {"report.json", "report.html", "report.md"}
    doc = json.loads((report_run.report_dir / "report.json").read_text())
    shipped = json.loads((REPO / "unlearn_audit" / "report" / "schema.json").read_text())
    jsonschema.Draft202012Validator(shipped).validate(doc)  # the raw schema file, not our wrapper
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "audit"
    # --report's JSON is the --json result, byte for byte in content
    assert doc == json.loads(report_run.json_path.read_text())


def test_provenance_hashes_every_file_independently(report_run):
    doc = json.loads(report_run.json_path.read_text())
    prov = doc["provenance"]
    by_role = [(f["role"], f["sha256"]) for f in prov["files"]]
    expected = [("model", sha256(report_run.model))]
    expected += [("reference", sha256(r)) for r in report_run.references]
    expected += [("forget", sha256(report_run.forget))]
    assert by_role == expected
    assert prov["seed"] == 0 and prov["device"] == "cpu" and prov["tool"]["name"] == "unlearn-audit"
    assert prov["command"].startswith("unlearn-audit check") or prov["command"]  # argv of the host under pytest
    assert prov["time"]["started"] <= prov["time"]["finished"]
    for lib in ("torch", "numpy", "scipy", "python"):
        assert doc["versions"][lib]


def test_schema_in_docs_is_the_shipped_one():
    assert (REPO / "docs" / "report-schema.json").read_bytes() == (
        REPO / "unlearn_audit" / "report" / "schema.json"
    ).read_bytes()
    assert schema()["$defs"]["audit"]["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_html_is_self_contained_and_shows_verdict_plots_and_hash(report_run):
    html = (report_run.report_dir / "report.html").read_text()
    doc = json.loads(report_run.json_path.read_text())
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html), "an external resource"
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", html)
    assert "Content-Security-Policy" in html
    assert "Residual knowledge: the audited model still recognises" in html
    assert doc["reason"].split("(")[0].strip() in html
    assert sha256(report_run.model) in html
    assert len(re.findall(r'<figure class="plot"', html)) == 6  # 2 probes × (R, rates, histogram)
    assert html.count("<svg") == 6
    flagged = len(doc["flagged_samples"])
    assert flagged > 0 and html.count('<img class="thumb"') == min(flagged, 100)


def test_markdown_summary(report_run):
    md = (report_run.report_dir / "report.md").read_text()
    doc = json.loads(report_run.json_path.read_text())
    assert md.startswith("# Unlearning audit: `original`")
    assert "| gaussian |" in md and "| fgsm |" in md and "residual_knowledge" in md
    assert f"Flagged forget samples: {len(doc['flagged_samples'])}" in md
    assert doc["model"]["sha256"] in md


def test_changing_one_byte_of_the_model_changes_the_hash_in_the_report(tmp_path):
    model = tmp_path / "model.safetensors"
    shutil.copyfile(FMNIST / "original.safetensors", model)
    original = _tiny_audit({"m": model}, n=30)["m"]
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01  # the last byte is tensor data: the file still loads, one weight differs
    model.write_bytes(bytes(data))
    changed = _tiny_audit({"m": model}, n=30)["m"]
    before, after = sha256(FMNIST / "original.safetensors"), sha256(model)
    assert before != after
    html_before = render(original, "html", thumbnails=False)
    html_after = render(changed, "html", thumbnails=False)
    assert before in html_before and before not in html_after
    assert after in html_after and after not in html_before
    assert after in render(changed, "md") and changed["provenance"]["files"][0]["sha256"] == after


# ------------------------------------------------------------------------------------------- migration
def test_v1_1_document_migrates_and_validates():
    """1.2 and 1.3 only added optional keys: a 1.1 document (the browser test's whole-class result) reads as 1.3, unchanged
    apart from the label, and renders with the fixed text of what an audit can prove."""
    raw = json.loads((REPO / "tests" / "browser" / "whole-class-result.json").read_text())
    assert raw["schema_version"] == "1.1" and "limits" not in raw
    doc = load_report(REPO / "tests" / "browser" / "whole-class-result.json")
    assert doc["schema_version"] == SCHEMA_VERSION == "1.3" and doc["provenance"]["migrated_from"] == "1.1"
    jsonschema.validate(doc, schema())
    for key in ("verdict", "reason", "probes", "flagged_samples", "config", "hashes"):
        assert doc[key] == raw[key]
    assert "cannot prove" in render(doc, "md").lower()


def test_v1_0_fixture_migrates_and_validates():
    raw = json.loads(FIXTURE_V1_0.read_text())
    assert raw["schema_version"] == "1.0" and "files" not in raw["provenance"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema())  # the old layout does not pass the new schema as is
    doc = load_report(FIXTURE_V1_0)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "audit"
    assert doc["provenance"]["migrated_from"] == "1.0"
    assert doc["provenance"]["files"] == provenance_files(raw)
    assert doc["provenance"]["files"][0]["sha256"] == sha256(FMNIST / "original.safetensors")
    assert doc["provenance"]["seed"] == raw["seed"]
    # everything else is unchanged
    for key in ("verdict", "reason", "probes", "flagged_samples", "config", "hashes"):
        assert doc[key] == raw[key]
    assert migrate(doc) == doc  # idempotent


def test_report_command_renders_old_fixture(cli, tmp_path):
    out = tmp_path / "old.html"
    result = cli("report", FIXTURE_V1_0, "-o", out)
    assert result.code == 0, result.err
    html = out.read_text()
    assert "migrated from 1.0" in html and sha256(FMNIST / "original.safetensors") in html
    assert html.count("<svg") == 6 and html.count('<img class="thumb"') == 100
    assert cli("report", FIXTURE_V1_0, "-o", tmp_path / "old.md").code == 0
    assert (tmp_path / "old.md").read_text().startswith("# Unlearning audit")
    assert cli("report", FIXTURE_V1_0, "-o", tmp_path / "x.out", "--format", "json", "--no-thumbnails").code == 0
    jsonschema.validate(json.loads((tmp_path / "x.out").read_text()), schema())


def test_report_command_on_a_fresh_result(cli, report_run, tmp_path):
    result = cli("report", report_run.json_path, "-o", tmp_path / "r.html", "--no-thumbnails")
    assert result.code == 0, result.err
    html = (tmp_path / "r.html").read_text()
    assert "<img" not in html and sha256(report_run.model) in html


# ------------------------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("{not json", ["bad.json", "not valid JSON", "line 1"]),
        ([1, 2], ["bad.json", "not an unlearn-audit result"]),
        ({"verdict": "pass"}, ["bad.json", "no schema_version"]),
        ("NEWER", ["bad.json", "schema_version 2.0 is newer", "upgrade"]),
        ("NEWER_MINOR", ["schema_version 1.9 is newer"]),
        ("OLD_UNKNOWN", ["unknown schema_version '0.3'"]),
        ("BAD_VERDICT", ["bad.json", "field verdict", "maybe"]),
        ("BAD_HASH", ["bad.json", "field model/sha256"]),
        ("NO_AFTER", ["bad.json", "remediation", "after"]),
    ],
)
def test_bad_results_give_one_line_errors(cli, tmp_path, content, fragments):
    base = json.loads(FIXTURE_V1_0.read_text())
    variants = {
        "NEWER": {**base, "schema_version": "2.0"},
        "NEWER_MINOR": {**base, "schema_version": "1.9"},
        "OLD_UNKNOWN": {**base, "schema_version": "0.3"},
        "BAD_VERDICT": {**base, "verdict": "maybe"},
        "BAD_HASH": {**base, "model": {**base["model"], "sha256": "abc"}},
        "NO_AFTER": {"kind": "remediation", "schema_version": "1.1", "method": "gd", "before": base},
    }
    path = _write(tmp_path, "bad.json", variants.get(content, content) if isinstance(content, str) else content)
    result = cli("report", path, "-o", tmp_path / "out.html")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out.html").exists()


def test_report_usage_errors(cli, tmp_path):
    assert_one_line_error(cli("report", FIXTURE_V1_0), "-o report.html")
    assert_one_line_error(cli("report", FIXTURE_V1_0, "-o", tmp_path / "r.pdf"), "r.pdf", "'.pdf'")
    assert_one_line_error(cli("report", FIXTURE_V1_0, "-o", tmp_path / "r.html", "--format", "pdf"), "'pdf'")
    assert_one_line_error(cli("report", tmp_path / "missing.json", "-o", tmp_path / "r.html"), "missing.json")
    assert_one_line_error(cli("report", FIXTURE_V1_0, "-o", tmp_path / "r.html", "--format", "html,md"), "exactly one")


def test_check_rejects_bad_format_before_auditing(cli, tmp_path):
    result = cli(
        "check",
        FMNIST / "original.safetensors",
        "--forget",
        FMNIST / "forget.npz",
        "--reference",
        FMNIST / "retrain-2.safetensors",
        "--report",
        tmp_path,
        "--format",
        "html,docx",
    )
    assert_one_line_error(result, "--format 'docx'")


def test_write_report_formats_and_invalid_input(tiny, tmp_path):
    paths = write_report(tiny["gd"], tmp_path / "md-only", ("md",))
    assert list(paths) == ["md"] and [p.name for p in (tmp_path / "md-only").iterdir()] == ["report.md"]
    broken = copy.deepcopy(tiny["gd"])
    broken["probes"]["gaussian"]["taus"] = []
    with pytest.raises(SchemaError, match="probes/gaussian/taus"):
        write_report(broken, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()


# ------------------------------------------------------------------------------- remediation and panel
def test_remediation_document_renders_before_and_after(tiny, tmp_path):
    before, after = tiny["gd"], tiny["retrain-1"]
    rem = {
        "kind": "remediation",
        "schema_version": SCHEMA_VERSION,
        "method": "neggrad+",
        "hyperparameters": {"lr": 0.01, "epochs": 2},
        "input_sha256": before["model"]["sha256"],
        "before": before,
        "after": after,
        "retain_acc": {"before": 0.91, "after": {"value": 0.9, "lo": 0.88, "hi": 0.92}},
        "test_acc": {"before": 0.86, "after": 0.85},
        "success": after["verdict"] == "pass",
        "reason": "hand-built for the test",
        "trials": [{"lr": 0.01, "verdict": after["verdict"]}],
    }
    paths = write_report(rem, tmp_path, thumbnails=False)
    doc = json.loads(paths["json"].read_text())
    jsonschema.validate(doc, schema())
    assert doc["kind"] == "remediation" and doc["after"]["model"]["name"] == "retrain-1"
    html = paths["html"].read_text()
    assert "Remediation report: neggrad+" in html and 'id="before-after"' in html
    assert 'id="after"' in html and 'id="before"' in html
    assert before["model"]["sha256"] in html and after["model"]["sha256"] in html
    assert "0.900 [0.880, 0.920]" in html and "hand-built for the test" in html
    assert html.count("<svg") == 2 * 3  # one probe, three plots, before and after
    md = paths["md"].read_text()
    assert md.startswith("# Remediation: neggrad+ on `gd`")
    assert f"| verdict | {before['verdict']} | {after['verdict']} |" in md
    # an older-version audit inside a remediation document is migrated too
    old = json.loads(FIXTURE_V1_0.read_text())
    assert prepare({**rem, "before": old})["before"]["provenance"]["migrated_from"] == "1.0"


def test_panel_renders_as_table(tiny, tmp_path):
    doc = copy.deepcopy(tiny["gd"])
    doc["panel"] = {
        "model": {
            "retain_acc": {"value": 0.912, "lo": 0.9, "hi": 0.92},
            "mia_svc_unseen": {"value": 0.61, "lo": 0.55, "hi": 0.66},
            "relearn_epochs": {"value": 2, "lo": None, "hi": None},
            "avg_gap": None,
        },
        "references": [
            {"name": "retrain-2", "retain_acc": {"value": 0.905, "lo": 0.89, "hi": 0.915}},
            {"retain_acc": {"value": 0.907, "lo": 0.9, "hi": 0.914}, "extra": "ignored"},
        ],
    }
    paths = write_report(doc, tmp_path, thumbnails=False)
    jsonschema.validate(json.loads(paths["json"].read_text()), schema())
    html = paths["html"].read_text()
    table = html[html.index('id="panel-table"') :]
    table = table[: table.index("</table>")]
    assert "retain accuracy" in table and "0.912 [0.900, 0.920]" in table and "0.905 [0.890, 0.915]" in table
    assert "retrain-2" in table and "reference 2" in table and "membership inference" in table
    assert "ignored" not in table
    md = paths["md"].read_text()
    assert "## Unlearning panel" in md and "| retain accuracy | 0.912 [0.900, 0.920] | 0.905 [0.890, 0.915] |" in md


def test_rendering_is_deterministic(tiny):
    """Same JSON -> same bytes (fixed SVG id salt, no dates in the SVGs); the audit JSON itself is deterministic
    apart from provenance.time (tests/integration/test_audit.py)."""
    for fmt in ("html", "md", "json"):
        assert render(copy.deepcopy(tiny["gd"]), fmt, thumbnails=False) == render(tiny["gd"], fmt, thumbnails=False)
    html = render(tiny["gd"], "html", thumbnails=False)
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across the inline SVGs"


def test_screening_report(tmp_path):
    """Reference-free screening (holdout only) renders its own plot and validates."""
    forget = load_samples(FMNIST / "forget.npz")
    audit = Audit(
        forget=forget.subset(range(60), source=forget.source),
        holdout=FMNIST / "test.npz",
        config=TINY,
        command="test",
    )
    doc = audit.run(FMNIST / "original.safetensors").to_dict()
    assert doc["mode"] == "screening" and doc["probes"] == {}
    paths = write_report(doc, tmp_path, thumbnails=False)
    jsonschema.validate(json.loads(paths["json"].read_text()), schema())
    html = paths["html"].read_text()
    assert 'data-plot="screening-gaussian"' in html and html.count("<svg") == 1
    assert "no retrained reference" in html and doc["holdout"]["sha256"] in html
    assert "screening gaussian: R_proxy" in paths["md"].read_text()


def test_v1_2_document_reads_as_1_3(tmp_path):
    """1.3 only added optional keys (sequential, draws_auto, samples_tested, config keys written when used)."""
    doc = json.loads((REPO / "tests" / "browser" / "whole-class-result.json").read_text())
    doc["schema_version"] = "1.2"  # a 1.1 layout is a valid 1.2 one
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    read = load_report(path)
    assert read["schema_version"] == "1.3" and read["provenance"]["migrated_from"] == "1.2"
    assert read["verdict"] == doc["verdict"] and read["probes"] == doc["probes"]
