"""Transfer probes on local models (``surrogate=``): the same surrogate-crafted rows for every compared model,
the surrogate left out of the comparison, the null band built from the same rows, and a one-line error where
no symmetric comparison is possible."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DIGITS
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.errors import ConfigError

pytestmark = pytest.mark.timeout(300)
R1, R2, R3 = (DIGITS / f"retrain-{i}.safetensors" for i in (1, 2, 3))
CONFIG = AuditConfig(probes=("fgsm", "pgd"), taus=(0.0, 0.05, 0.1), draws=4, seed=3, panel="none",
                     precision="fp32", device="cpu", bootstrap=200, probe_draws=(("pgd", 2),))  # fmt: skip


def audit(model, references, surrogate=R1):
    return Audit(model, references=references, forget=DIGITS / "forget.csv", config=CONFIG, surrogate=surrogate,
                 sample_options={"dataset": "digits"}).run()  # fmt: skip


def test_every_compared_model_sees_the_same_surrogate_crafted_rows():
    """gd audited against (r2, r3) and r2 audited against (gd, r3), both transferring from r1: each model's
    counts are the same in either role, because the rows do not depend on who is audited."""
    first = audit(DIGITS / "gd.safetensors", [R1, R2, R3])
    second = audit(R2, [R1, DIGITS / "gd.safetensors", R3])
    for probe in ("fgsm", "pgd"):
        a, b = first.counts[probe], second.counts[probe]
        assert a.access == b.access == "transfer" and a.probe_config["surrogate"] == "retrain-1"
        assert a.models == ("gd", "retrain-2", "retrain-3") and b.models == ("retrain-2", "gd", "retrain-3")
        assert a.crafted_on == (0,) and bool(a.evaluated_mask.all())  # one set of rows, every model counted
        assert np.array_equal(a.correct[0, 0], b.correct[0, 1])  # gd, audited or reference
        assert np.array_equal(a.correct[0, 1], b.correct[0, 0])  # retrain-2, reference or audited
        assert np.array_equal(a.correct[0, 2], b.correct[0, 2])  # retrain-3 in both
        band = first.probes[probe].band
        assert band.method == "leave-one-out over 2 references"  # the null band from the same rows
        assert first.probes[probe].access == "transfer" and first.probes[probe].surrogate == "retrain-1"
    assert any("crafts only" in note for note in first.notes)


def test_white_box_is_unchanged_without_a_surrogate():
    result = audit(DIGITS / "gd.safetensors", [R2, R3], surrogate=None)
    counts = result.counts["fgsm"]
    assert counts.access == "white-box" and counts.crafted_on == (0, 1, 2) and "surrogate" not in counts.probe_config
    assert result.to_dict()["probes"]["fgsm"]["access"] == "white-box" and result.remote is None


def test_a_surrogate_that_is_the_only_reference_is_refused():
    with pytest.raises(ConfigError, match="only reference.*second --reference"):
        audit(DIGITS / "gd.safetensors", [R1])
