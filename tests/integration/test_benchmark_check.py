"""Smoke test of benchmarks/check.py: a --quick run times every process and writes its section of the performance
document, keeping the engine benchmark's section. Performance is measured by the benchmark, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_check_benchmark_quick_run_writes_its_section(tmp_path):
    bench = _load("bench_check", "check.py")
    out = tmp_path / "performance.md"
    out.write_text("# Performance of the probe engine\n\n## (a) engine table\n\n| gaussian | ours fp32 |\n")
    args = ["--quick", "--settings", "a,b", "--no-profile", "--remediate-timeout", "600", "--out", str(out)]
    assert bench.main(args) == 0
    text = out.read_text()
    check_part, engine_part = text.split("<!-- begin section: engine", 1)
    for needle in ("`check` (cold cache)", "`check` (warm cache)", "torchattacks loop", "ART loop", "### Targets",
                   "remediate --search", "Load average", "usable core", "### The fixed cost of a process"):  # fmt: skip
        assert needle in check_part, needle
    assert "### (a) engine table" in engine_part and "| gaussian | ours fp32 |" in engine_part  # kept, demoted
    raw = json.loads((tmp_path / "performance-check.json").read_text())
    for result in raw["results"]:
        assert result["check_warm"]["cache_hit"] is True and result["check_cold"]["cache_hit"] is False
        assert result["check_warm"]["verdict"] == result["check_cold"]["verdict"]
        assert all(result[lib]["seconds"] > 0 for lib in ("torchattacks", "art"))
    assert raw["remediation"]["timed_out"] is False and raw["remediation"]["trials"]
    # the engine benchmark rewrites only its own section
    perfdoc = _load("bench_perfdoc", "perfdoc.py")
    perfdoc.write_section(out, "engine", "## engine, again\n")
    again = out.read_text()
    assert again.split("<!-- begin section: engine", 1)[0] == check_part and "## engine, again" in again


def test_model_levers_quick_run():
    """benchmarks/model_levers.py (stacked and frozen models, measured and not kept) still runs."""
    levers = _load("bench_model_levers", "model_levers.py")
    assert levers.main(["--quick"]) == 0


def test_the_baseline_loops_read_the_forget_set_as_check_does(tmp_path, capsys):
    """The loops' R at τ = 0 (clean inputs, fixed bundled models) is the package's: a uint8 forget set is scaled
    to [0, 1] as load_samples scales it (the loops once fed 0…255 pixels to the models)."""
    import numpy as np
    import torch

    from tests.conftest import FMNIST
    from unlearn_audit import load_model, load_samples

    data = np.load(FMNIST / "forget.npz")
    assert data["x"].dtype == np.uint8
    forget = tmp_path / "forget.npz"
    np.savez(forget, x=data["x"][:64], y=data["y"][:64], ids=data["ids"][:64])
    paths = [str(FMNIST / f"{name}.safetensors") for name in ("gd", "retrain-1", "retrain-2")]
    samples = load_samples(forget)
    with torch.no_grad():
        hits = [float((load_model(p).eval()(samples.x).argmax(1) == samples.y).sum()) for p in paths]
    expected = hits[0] / np.mean(hits[1:])
    loops = _load("bench_baseline_loops", "baseline_loops.py")
    args = ["--library", "torchattacks", "--arch", "bundled", "--model", paths[0], "--reference", paths[1],
            "--reference", paths[2], "--forget", str(forget), "--taus", "0", "--draws", "1", "--probes", "gaussian"]  # fmt: skip
    assert loops.main(args) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["R"]["gaussian"][0]
    assert measured == pytest.approx(expected, abs=1e-12)
