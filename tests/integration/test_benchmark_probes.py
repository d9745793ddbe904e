"""Smoke test of benchmarks/probes.py: a tiny run writes a complete performance document."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.slow
def test_probe_benchmark_quick_run_writes_the_doc(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_probes", REPO / "benchmarks" / "probes.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_probes"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = tmp_path / "performance.md"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the benchmark is specified single-threaded (OMP_NUM_THREADS=1)
    try:
        assert bench.main(["--quick", "--settings", "fmnist", "--no-profile", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    text = out.read_text()
    for needle in ("| gaussian | ours fp32 |", "| pgd | ART |", "**suite**", "Load average", "GFLOP/s", "PROJECTION"):
        assert needle.lower() in text.lower(), needle
    assert "nan" not in text.lower().split("|")
