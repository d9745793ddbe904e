"""Large dataset-backed sets stay lazy (rows converted per chunk) and give exactly the same audit."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.conftest import FMNIST
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io import samples as samples_module
from unlearn_audit.io.samples import LazyRows


def test_lazy_rows_behave_like_a_tensor():
    array = np.arange(5 * 4, dtype=np.uint8).reshape(5, 1, 2, 2)
    lazy = LazyRows(array, np.array([4, 0, 2]))
    dense = torch.from_numpy(array[[4, 0, 2]].astype(np.float32) / 255)
    assert lazy.shape == dense.shape and lazy.dim() == 4 and len(lazy) == 3
    assert torch.equal(lazy[:], dense) and torch.equal(lazy[1:], dense[1:]) and torch.equal(lazy[2], dense[2])
    assert torch.equal(lazy[torch.tensor([2, 0])], dense[[2, 0]])
    assert torch.equal(lazy.subset(np.array([1]))[:], dense[[1]])


def test_lazy_and_eager_forget_sets_give_the_same_audit(monkeypatch):
    eager = load_samples(FMNIST / "forget.csv")
    monkeypatch.setattr(samples_module, "LAZY_THRESHOLD_BYTES", 0)
    lazy = load_samples(FMNIST / "forget.csv")
    assert lazy.is_lazy and not eager.is_lazy
    assert lazy.content_sha256 != "" and torch.equal(lazy.x[:], eager.x)
    config = AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 8 / 255), draws=4, bootstrap=300)
    refs = [FMNIST / "retrain-2.safetensors", FMNIST / "retrain-3.safetensors"]
    reports = []
    for forget in (eager.subset(range(80)), lazy.subset(range(80))):
        report = (
            Audit(references=refs, forget=forget, config=config, command="t", cache_dir=False)
            .run(FMNIST / "gd.safetensors")
            .to_dict()
        )
        report["provenance"].pop("time")
        report["provenance"].pop("reference_cache")  # its keys hash the forget set's record, dropped here too
        report.pop("forget")
        report["hashes"].pop("forget")
        report.pop("binding")  # binds the forget set's hash, which differs with the record (as "hashes" does)
        report["provenance"]["files"] = [f for f in report["provenance"]["files"] if f["role"] != "forget"]
        reports.append(json.dumps(report, sort_keys=True))
    assert reports[0] == reports[1]
