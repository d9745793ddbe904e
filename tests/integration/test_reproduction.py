"""The reproduction study (examples/reproduce_paper/) end to end, reduced: two methods, one seed, a small subset."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_python


@pytest.mark.training
@pytest.mark.slow
def test_reduced_reproduction_study_runs(tmp_path):
    script = REPO / "examples" / "reproduce_paper" / "reproduce.py"
    done = run_python(script, "--quick", "--out", tmp_path, cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["per_seed"][str(results["protocol"]["seeds"][0])]
    assert set(rows) == {"Original", "Retrain", "gd", "rurk"}
    for row in rows.values():
        assert row["panel"]["retain_acc"] is not None and row["panel"]["mia_svc_unseen"] is not None
        assert set(row["R"]) == {"gaussian", "fgsm", "pgd"}
    # Roles, not verdicts: at this scale (60 forget images, two references) the original's verdict is
    # residual_knowledge under native, avx2 and default kernels with 2 threads, but inconclusive with 1 thread.
    # Its R never is: measured 1.45-1.50 (Gaussian) against the honest retrain's 1.14-1.17, a gap of at least 0.27
    # on every probe; RURK's preset wipes the forget class (R 0.26-0.34); and the original misclassifies 9-10 of
    # the 60 forget images where the retrain misses 20.
    original, retrain, rurk = rows["Original"], rows["Retrain"], rows["rurk"]
    assert original["verdict"] in ("residual_knowledge", "inconclusive")
    for probe in ("gaussian", "fgsm", "pgd"):
        assert original["R_pooled"][probe] > retrain["R_pooled"][probe] + 0.1, (probe, original, retrain)
        assert rurk["R_pooled"][probe] < retrain["R_pooled"][probe] - 0.3, (probe, rurk, retrain)
    assert original["panel"]["unlearn_acc"] < retrain["panel"]["unlearn_acc"] - 0.05
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n| ") >= 5 and "Avg Gap" in table
    assert (tmp_path / "r_tau.png").stat().st_size > 10_000
