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
                   "remediate --search", "Load average", "usable core"):  # fmt: skip
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
