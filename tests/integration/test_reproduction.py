"""The reproduction study (examples/reproduce_paper/) end to end, reduced: two methods, one seed, a small subset."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_python


@pytest.mark.slow
def test_reduced_reproduction_study_runs(tmp_path):
    script = REPO / "examples" / "reproduce_paper" / "reproduce.py"
    done = run_python(script, "--quick", "--out", tmp_path, cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["per_seed"][str(results["protocol"]["seeds"][0])]
    assert set(rows) == {"Original", "Retrain", "gd", "rurk"}
    assert rows["Original"]["verdict"] == "residual_knowledge"
    for row in rows.values():
        assert row["panel"]["retain_acc"] is not None and row["panel"]["mia_svc_unseen"] is not None
        assert set(row["R"]) == {"gaussian", "fgsm", "pgd"}
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n| ") >= 5 and "Avg Gap" in table
    assert (tmp_path / "r_tau.png").stat().st_size > 10_000
