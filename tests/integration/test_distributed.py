"""Distributed (torchrun, 2 CPU processes on gloo) and resumed runs give exactly the single-process result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FMNIST, REPO

BIN = Path(sys.executable).parent
ARGS = [
    "--reference",
    str(FMNIST / "retrain-2.safetensors"),
    "--reference",
    str(FMNIST / "retrain-3.safetensors"),
    "--probes",
    "gaussian,fgsm",
    "--draws",
    "6",
    "--taus",
    "0:8/255:3",
    "--bootstrap",
    "300",
]
ENV = {**os.environ, "UNLEARN_AUDIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


def _forget(tmp_path: Path, n: int) -> Path:
    from unlearn_audit import load_samples

    s = load_samples(FMNIST / "forget.npz")
    path = tmp_path / "forget.npz"
    np.savez(path, x=(s.x[:n].numpy() * 255).round().astype(np.uint8), y=s.y[:n].numpy(), ids=np.asarray(s.ids[:n]))
    return path


def _check(*extra: str, forget: Path, out: Path, launcher: list[str] | None = None, wait: bool = True):
    cmd = [
        *(launcher or [str(BIN / "unlearn-audit")]),
        "check",
        str(FMNIST / "gd.safetensors"),
        "--forget",
        str(forget),
        *ARGS,
        "--json",
        str(out),
        *extra,
    ]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def _result(path: Path) -> dict:
    report = json.loads(path.read_text())
    report.pop("provenance")
    return report


@pytest.mark.slow
def test_two_process_gloo_run_equals_single_process(tmp_path):
    forget = _forget(tmp_path, 150)
    single = _check("--shard-size", "32", forget=forget, out=tmp_path / "single.json")
    assert single.returncode in (0, 1, 3), single.stderr
    launcher = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "unlearn_audit"]
    dist = _check("--shard-size", "32", forget=forget, out=tmp_path / "dist.json", launcher=launcher)
    assert dist.stdout.count("verdict:") == 1, "only rank 0 prints"
    report = json.loads((tmp_path / "dist.json").read_text())
    assert report["provenance"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert _result(tmp_path / "dist.json") == _result(tmp_path / "single.json")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    forget = _forget(tmp_path, 240)
    work = tmp_path / "work"
    uninterrupted = _check("--shard-size", "16", forget=forget, out=tmp_path / "clean.json")
    assert uninterrupted.returncode in (0, 1, 3), uninterrupted.stderr
    proc = _check(
        "--shard-size", "16", "--work-dir", str(work), forget=forget, out=tmp_path / "resumed.json", wait=False
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(work.rglob("*.npz"))) < 4:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(work.rglob("*.npz")))
    assert 4 <= done < 2 * 15, f"kill the run mid-way (found {done} finished shards)"
    assert not (tmp_path / "resumed.json").exists()
    resumed = _check("--shard-size", "16", "--work-dir", str(work), forget=forget, out=tmp_path / "resumed.json")
    assert resumed.returncode == uninterrupted.returncode, resumed.stderr
    assert _result(tmp_path / "resumed.json") == _result(tmp_path / "clean.json")
    assert len(list(work.rglob("*.npz"))) == 2 * 15


def test_changed_inputs_never_reuse_checkpoints(tmp_path):
    from unlearn_audit.audit import Audit, AuditConfig

    forget = _forget(tmp_path, 40)
    config = AuditConfig(probes=("gaussian",), taus=(0.0, 8 / 255), draws=3, bootstrap=300)
    refs = [FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]
    work = tmp_path / "w"
    a = Audit(references=refs, forget=forget, config=config, work_dir=work, shard_size=16).run(
        FMNIST / "gd.safetensors"
    )
    b = Audit(references=refs, forget=forget, config=config, work_dir=work, shard_size=16).run(
        FMNIST / "original.safetensors"
    )
    fresh = Audit(references=refs, forget=forget, config=config).run(FMNIST / "original.safetensors")
    assert len({p.parent.parent.name for p in work.rglob("*.npz")}) == 2
    assert np.array_equal(b.counts["gaussian"].correct, fresh.counts["gaussian"].correct)
    assert not np.array_equal(a.counts["gaussian"].correct, b.counts["gaussian"].correct)
