"""``check --seed secret --seed-file`` and ``verify-report`` end to end on the bundled digits models (issue 17):
the seed is written only to the seed file, the report carries its commitment and a binding, verify-report
reruns the audit and matches, and a one-byte change to any bound file (or to the report's policy) fails with a
message that names it."""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DIGITS, assert_one_line_error

FILES = ["original.safetensors", "retrain-1.safetensors", "retrain-2.safetensors", "forget.csv"]
CHECK = ["--probes", "gaussian,fgsm", "--taus", "0,0.05", "--draws", "4", "--bootstrap", "200", "--panel", "none"]


@dataclass
class SecretRun:
    folder: Path
    seed_file: Path
    report: Path
    out: str
    err: str
    code: int


def _check(cli, folder: Path, *extra: str | Path):
    return cli(
        "check", folder / "original.safetensors", "--forget", folder / "forget.csv",
        "--reference", folder / "retrain-1.safetensors", "--reference", folder / "retrain-2.safetensors",
        *CHECK, *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("secret")
    for name in FILES:
        shutil.copy(DIGITS / name, folder / name)
    return folder


@pytest.fixture
def secret_run(bundle, cli, tmp_path) -> SecretRun:
    folder = tmp_path / "audit"
    shutil.copytree(bundle, folder)
    seed_file, report = tmp_path / "audit.seed", folder / "r.json"
    result = _check(
        cli, folder, "--seed", "secret", "--seed-file", seed_file, "--json", report, "--report", folder / "rep", "-v"
    )
    return SecretRun(folder, seed_file, report, result.out, result.err, result.code)


def _seed_strings(seed_file: Path) -> list[str]:
    doc = json.loads(seed_file.read_text())
    value = int(doc["seed"], 16)
    return [doc["seed"], str(value), hex(value)[2:], doc["salt"], str(value)[:12]]


def test_secret_seed_stays_in_its_file_and_verify_report_matches(secret_run, cli):
    assert secret_run.code in (0, 1, 3), secret_run.err
    mode = stat.S_IMODE(secret_run.seed_file.stat().st_mode)
    assert mode == 0o600
    doc = json.loads(secret_run.report.read_text())
    assert doc["seed"] is None and doc["config"]["seed"] is None and doc["provenance"]["seed"] is None
    seed_doc = json.loads(secret_run.seed_file.read_text())
    assert doc["seed_commitment"] == seed_doc["commitment"] == doc["config"]["seed_commitment"]
    assert doc["binding"]["seed"] == {"commitment": doc["seed_commitment"]}
    outputs = [secret_run.report.read_text(), secret_run.out, secret_run.err]
    outputs += [p.read_text() for p in (secret_run.folder / "rep").iterdir() if p.suffix in (".json", ".html", ".md")]
    for secret in _seed_strings(secret_run.seed_file):
        assert not any(secret in text for text in outputs), "the seed leaked"
    verified = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert verified.code == 0, verified.out + verified.err
    assert "verify-report: match" in verified.out and "ok   rerun" in verified.out


def test_seed_file_is_never_overwritten(secret_run, cli):
    before = secret_run.seed_file.read_bytes()
    again = _check(cli, secret_run.folder, "--seed", "secret", "--seed-file", secret_run.seed_file)
    assert_one_line_error(again, "--seed-file", "never overwritten")
    assert secret_run.seed_file.read_bytes() == before


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _flip_csv_byte(path: Path) -> None:
    text = path.read_text()
    head, _, last = text.rstrip("\n").rpartition("\n")
    index, label = last.split(",")
    path.write_text(f"{head}\n{int(index) + 1},{label}\n")  # one forget sample swapped for its neighbour


@pytest.mark.parametrize(
    "role, name, change",
    [
        ("model", "original.safetensors", _flip_last_byte),
        ("reference_1", "retrain-2.safetensors", _flip_last_byte),
        ("forget", "forget.csv", _flip_csv_byte),
    ],
)
def test_a_changed_bound_file_fails_verification(secret_run, cli, role, name, change):
    change(secret_run.folder / name)
    result = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert result.code == 1, result.out + result.err
    failed = [line for line in result.out.splitlines() if line.startswith("FAIL")]
    assert failed[0].startswith(f"FAIL {role}: ") and name in failed[0] and "the file changed" in failed[0]
    assert "FAIL rerun: not run" in result.out and "MISMATCH" in result.out


def test_a_changed_policy_in_the_report_fails_verification(secret_run, cli):
    text = secret_run.report.read_text()
    doc = json.loads(text)
    doc["policy"]["alpha"] = 0.06  # 0.05 -> 0.06: one byte
    secret_run.report.write_text(json.dumps(doc, indent=2))
    result = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert result.code == 1
    assert "FAIL binding: the report's policy is not the one bound to the verdict" in result.out
    assert "binding was edited" not in result.out  # the binding itself is intact: only the policy moved


def test_an_edited_binding_fails_verification(secret_run, cli):
    doc = json.loads(secret_run.report.read_text())
    doc["binding"]["files"]["model"] = "0" * 64  # rebinding the verdict to another model
    secret_run.report.write_text(json.dumps(doc, indent=2))
    result = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert result.code == 1 and "FAIL binding: the binding digest does not match the bound fields" in result.out


def test_an_edited_verdict_fails_verification(secret_run, cli):
    doc = json.loads(secret_run.report.read_text())
    doc["verdict"] = "pass" if doc["verdict"] != "pass" else "residual_knowledge"
    secret_run.report.write_text(json.dumps(doc, indent=2))
    result = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert result.code == 1 and "is not the bound one" in result.out


def test_another_seed_file_does_not_open_the_commitment(secret_run, cli, tmp_path):
    other = tmp_path / "other.seed"
    from unlearn_audit.commitment import SecretSeed

    SecretSeed.draw().write(other)
    result = cli("verify-report", secret_run.report, "--seed-file", other)
    assert result.code == 1 and "does not open the report's commitment" in result.out


def test_moved_files_verify_with_root(secret_run, cli, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in FILES:
        shutil.move(secret_run.folder / name, moved / name)
    missing = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file)
    assert_one_line_error(missing, "model: not found at", "--root")
    result = cli("verify-report", secret_run.report, "--seed-file", secret_run.seed_file, "--root", moved)
    assert result.code == 0, result.out + result.err


def test_bad_input_is_exit_2(secret_run, cli, tmp_path):
    assert_one_line_error(cli("verify-report", secret_run.report), "secret seed", "--seed-file")
    assert_one_line_error(_check(cli, secret_run.folder, "--seed", "secret"), "--seed secret needs --seed-file")
    assert_one_line_error(_check(cli, secret_run.folder, "--seed", "lucky"), "--seed 'lucky'")
    not_a_seed = tmp_path / "x.seed"
    not_a_seed.write_text("{}")
    assert_one_line_error(cli("verify-report", secret_run.report, "--seed-file", not_a_seed), "not a seed file")


def test_public_seed_report_verifies_without_a_seed_file(bundle, cli, tmp_path):
    report = tmp_path / "public.json"
    _check(cli, bundle, "--seed", "7", "--json", report)
    doc = json.loads(report.read_text())
    assert doc["seed"] == 7 and doc["seed_commitment"] is None and doc["binding"]["seed"] == {"value": 7}
    result = cli("verify-report", report)
    assert result.code == 0 and "public seed 7" in result.out, result.out + result.err


def test_jittered_taus_from_the_secret_seed_verify(bundle, cli, tmp_path):
    report, seed_file = tmp_path / "jitter.json", tmp_path / "jitter.seed"
    flags = ["--seed", "secret", "--seed-file", seed_file, "--jitter-taus", "--json", report]
    result = _check(cli, bundle, *flags, "--taus", "0:0.05:3")
    assert result.code in (0, 1, 3), result.err
    config = json.loads(report.read_text())["config"]
    assert config["jitter_taus"] is True and config["taus"][0] == 0.0 and len(config["taus"]) == 3
    assert 0.0 < config["taus"][1] <= 0.025 < config["taus"][2] <= 0.05  # one τ in each half of (0, 0.05]
    verified = cli("verify-report", report, "--seed-file", seed_file)
    assert verified.code == 0, verified.out + verified.err
    assert_one_line_error(_check(cli, bundle, "--jitter-taus"), "--jitter-taus", "--seed secret")
