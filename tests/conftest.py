from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
REFERENCE_MODELS = REPO / "reference_models"
FMNIST = REFERENCE_MODELS / "fmnist-small"
DIGITS = REFERENCE_MODELS / "digits-tiny"

KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
"""Environment variables that choose CPU kernels (docs/testing.md): imitations of another machine."""

os.environ.setdefault("UNLEARN_AUDIT_NO_PROGRESS", "1")
# the reference cache (reference_cache.py) defaults to the user's cache folder: tests keep theirs in a temporary one
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="unlearn-audit-test-cache-")
# intra-op threads change the rounding too: UNLEARN_AUDIT_TEST_THREADS imitates another core count (docs/testing.md)
torch.set_num_threads(int(os.environ.get("UNLEARN_AUDIT_TEST_THREADS") or max(1, min(2, os.cpu_count() or 1))))


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns exit code, stdout and stderr."""
    from unlearn_audit.cli import main

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: CliResult, *fragments: str, code: int = 2) -> None:
    """The contract for bad input: exit code 2 and exactly one 'error:' line that names the problem."""
    assert result.code == code, (result.code, result.err, result.out)
    errors = [line for line in result.error_lines if line.startswith("error:")]
    assert len(errors) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    return FMNIST


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    return DIGITS


# --------------------------------------------------------------------------------- reports (issue 7)
REPORT_CHECK_ARGS = (
    "--probes", "gaussian,fgsm", "--taus", "0,4/255,8/255", "--draws", "10", "--bootstrap", "300", "--device", "cpu",
)  # fmt: skip


@dataclass
class ReportRun:
    code: int
    json_path: Path
    report_dir: Path
    model: Path
    references: list[Path]
    forget: Path


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> ReportRun:
    """One small real audit on the reference models (``check --json --report``), shared by the report tests."""
    from unlearn_audit.cli import main

    out = tmp_path_factory.mktemp("report-run")
    refs = [FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]
    args = [str(FMNIST / "original.safetensors"), "--forget", str(FMNIST / "forget.npz")]
    for ref in refs:
        args += ["--reference", str(ref)]
    args += [*REPORT_CHECK_ARGS, "--json", str(out / "result.json"), "--report", str(out / "report")]
    code = main(["check", *args])
    return ReportRun(
        code, out / "result.json", out / "report", FMNIST / "original.safetensors", refs, FMNIST / "forget.npz"
    )


def run_python(script: Path, *args: str | Path, cwd: Path, timeout: int = 600):  # noqa: ANN201
    """Run a Python script the way a user would (fresh process, this checkout importable, no progress bars)."""
    import subprocess
    import sys

    env = {"PYTHONPATH": str(REPO), "UNLEARN_AUDIT_NO_PROGRESS": "1", "PATH": "/usr/bin:/bin"}
    env["OMP_NUM_THREADS"] = os.environ.get("UNLEARN_AUDIT_TEST_THREADS") or "2"
    # the CPU kernel choice travels with it, so `make test-kernels` imitates another machine in the child too
    env.update({k: os.environ[k] for k in KERNEL_ENV if k in os.environ})
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
