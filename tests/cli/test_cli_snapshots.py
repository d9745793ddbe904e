"""The command line's interface, frozen: ``--help`` of the app and of every command, and the JSON of a small
``check`` run that sets every option ``check`` maps into the audit's config.

The snapshots in ``snapshots/`` were recorded from the single-module ``cli.py`` before it became the ``cli/``
package (issue 14), so these tests prove the refactor changed neither the help nor the JSON. After a deliberate
interface change, rewrite them with ``UNLEARN_AUDIT_UPDATE_SNAPSHOTS=1 pytest tests/cli`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DIGITS, REPO

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = bool(os.environ.get("UNLEARN_AUDIT_UPDATE_SNAPSHOTS"))
# A fixed terminal: click wraps help at min(COLUMNS, 80) - 2; no colour in case a renderer would add it.
TERMINAL = {"COLUMNS": "120", "TERM": "dumb", "NO_COLOR": "1"}
COMMANDS = ["info", "check", "report", "unlearn", "remediate", "demo", "verify-report"]


def matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; record it with UNLEARN_AUDIT_UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} changed; diff it against {path}"


@pytest.fixture
def fixed_terminal(monkeypatch):
    for key, value in TERMINAL.items():
        monkeypatch.setenv(key, value)


def test_the_app_lists_exactly_the_snapshotted_commands():
    import typer

    from unlearn_audit.cli import app

    assert list(typer.main.get_command(app).commands) == COMMANDS  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_unchanged(command, cli, fixed_terminal):
    result = cli(*([command] if command else []), "--help")
    assert result.code == 0 and result.err == "", result.err
    matches_snapshot(f"help-{command or 'app'}.txt", result.out)


def test_python_m_help_is_the_app_help():
    """``python -m unlearn_audit`` (the torchrun target) is the same app as the console script."""
    env = {**os.environ, **TERMINAL, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "unlearn_audit", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (SNAPSHOTS / "help-app.txt").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------- check's JSON
def normalised(doc: Any, tmp: Path) -> Any:
    """The JSON without what differs between runs and machines: wall-clock times, library versions, the
    platform, the temporary folder's name, and whether the reference side came from the cache (a record of
    how the run was computed; tests/integration/test_reference_cache.py proves the rest does not depend on it)."""
    if isinstance(doc, dict):
        dropped = {"time", "versions", "platform", "reference_cache"}
        return {k: normalised(v, tmp) for k, v in doc.items() if k not in dropped}
    if isinstance(doc, list):
        return [normalised(v, tmp) for v in doc]
    if isinstance(doc, str):
        return doc.replace(str(tmp), "<tmp>")
    return doc


def assert_same(actual: Any, expected: Any, path: str = "") -> None:
    """Equal to the last bit, except two panel entries measured to move with the CPU's kernels (the run under
    ``ATEN_CPU_CAPABILITY=default`` against avx2/avx512): ART's membership attack trains its own classifier
    (values up to 0.07 apart: compared by keys only), and the reference-calibrated MIA's p-values, printed to
    six digits (up to 6e-5 apart, relative: compared to 1e-3). Every audit number is bit-identical across them."""
    if path.rsplit(".", 1)[-1].startswith("mia_art_"):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), (path, list(actual), list(expected))
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif ".mia_reference.p_values[" in path:
        assert actual == pytest.approx(expected, rel=1e-3, abs=1e-12), path
    else:
        assert type(actual) is type(expected) and actual == expected, (path, actual, expected)


@pytest.mark.slow
def test_check_json_is_unchanged(cli, tmp_path, monkeypatch):
    """A small real audit on the digits models through every option ``check`` turns into the audit's config
    (probes, τ grid, draws with a per-probe override, seed, batch size, precision, engine, bootstrap, CI method,
    the whole policy, the panel with retain and test sets, a holdout). The audit itself is deterministic on a
    given machine; what this guards is the path from argv to ``AuditConfig`` and back out as JSON."""
    holdout = tmp_path / "holdout.csv"
    rows = (DIGITS / "test.csv").read_text(encoding="utf-8").splitlines()
    holdout.write_text("\n".join(rows[:2] + [r for r in rows[2:] if r.endswith(",0")]) + "\n", encoding="utf-8")
    monkeypatch.chdir(REPO)
    d = DIGITS.relative_to(REPO)
    args = [
        "check", d / "original.safetensors", "--forget", d / "forget.csv",
        "--reference", d / "retrain-2.safetensors", "--reference", d / "retrain-3.safetensors",
        "--holdout", holdout, "--retain", d / "retain.csv", "--test", d / "test.csv",
        "--probes", "gaussian,fgsm", "--taus", "0,2/255,6/255", "--draws", "8", "--draws", "fgsm=4",
        "--seed", "3", "--batch-size", "64", "--precision", "fp32", "--engine", "fused", "--device", "cpu",
        "--bootstrap", "300", "--ci-method", "percentile",
        "--alpha", "0.1", "--fdr", "0.1", "--tau-min", "0", "--tau-max", "0.02", "--count-probes", "gaussian",
        "--margin", "0.2", "--panel", "standard", "--json", tmp_path / "result.json",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["unlearn-audit", *map(str, args)])  # check records its command line
    result = cli(*args)
    assert result.code == 3, result.err  # inconclusive: R straddles the edge of the two-reference null band
    doc = normalised(json.loads((tmp_path / "result.json").read_text(encoding="utf-8")), tmp_path)
    if UPDATE:
        matches_snapshot("check-digits.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    assert_same(doc, json.loads((SNAPSHOTS / "check-digits.json").read_text(encoding="utf-8")))
