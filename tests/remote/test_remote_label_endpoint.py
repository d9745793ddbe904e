"""Served models against the fake server through the audit, each counted exactly like a local twin of the same
model: a label-only endpoint (integer output; without --num-classes the audit says what is missing) and a served
reference (with fgsm as a transfer probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.remote.fake_oip import FakeOIPServer, linear_model
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.errors import ConfigError
from unlearn_audit.io.models import wrap_model
from unlearn_audit.io.remote import RemoteModel, RemoteSettings
from unlearn_audit.io.remote.subject import remote_auditable
from unlearn_audit.io.sampleset import Samples

pytestmark = pytest.mark.timeout(120)
CONFIG = AuditConfig(probes=("gaussian",), taus=(0.0, 0.1, 0.3), draws=6, seed=2, panel="none", device="cpu",
                     bootstrap=200, precision="fp32")  # fmt: skip


class Twin(nn.Module):
    """The fake server's linear model in torch (float64), for the local side of the comparison."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.register_buffer("weight", torch.from_numpy(rng.normal(size=(8, 10))))
        self.register_buffer("bias", torch.from_numpy(rng.normal(size=10)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(x.shape[0], -1).double() - 0.5) @ self.weight + 0.1 * self.bias


def label_server() -> FakeOIPServer:
    scores = linear_model((8,), 10, seed=0)
    return FakeOIPServer(lambda rows: scores(rows).argmax(axis=1), output_datatype="INT64")


def samples(n: int = 40) -> Samples:
    x = torch.rand(n, 8, generator=torch.Generator().manual_seed(1))
    y = torch.from_numpy(linear_model((8,), 10, seed=0)(x.numpy()).argmax(axis=1))
    return Samples(x=x, y=y, ids=tuple(f"s{i}" for i in range(n)), domain="tabular")


def test_label_only_counts_equal_the_local_twin():
    refs = [wrap_model(Twin(seed), name=f"ref-{seed}") for seed in (1, 2)]
    forget = samples()
    local = Audit(wrap_model(Twin(0), name="twin"), references=refs, forget=forget, config=CONFIG).run()
    with label_server() as fake, RemoteModel(fake.url, RemoteSettings(num_classes=10)) as client:
        served = Audit(remote_auditable(client), references=refs, forget=forget, config=CONFIG).run()
    assert client.output_kind == "labels"
    mine, theirs = served.counts["gaussian"], local.counts["gaussian"]
    assert np.array_equal(mine.correct, theirs.correct) and np.array_equal(mine.disagree, theirs.disagree)
    assert 0 < mine.correct[0, 0, :, 2].sum() < 6 * len(forget)  # the noise changed some labels
    assert served.to_dict()["remote"]["endpoints"][0]["output_kind"] == "labels"


def test_label_only_without_num_classes_says_so():
    with label_server() as fake, RemoteModel(fake.url, RemoteSettings()) as client:
        with pytest.raises(ConfigError, match="labels only; pass --num-classes"):
            Audit(remote_auditable(client), references=[wrap_model(Twin(1))], forget=samples(), config=CONFIG)


def test_a_served_reference_counts_like_its_local_twin_and_fgsm_transfers():
    """References may be endpoints too: the served reference's counts equal its local twin's, fgsm runs as a
    transfer probe (crafted on the local reference, which then crafts only) and the report names the role."""
    config = AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 0.1, 0.3), draws=6, seed=2, panel="none",
                         device="cpu", bootstrap=200, precision="fp32")  # fmt: skip
    subject, local_ref, forget = wrap_model(Twin(3), name="subject"), wrap_model(Twin(1), name="ref-1"), samples()
    twin = Audit(subject, references=[wrap_model(Twin(0), name="twin"), local_ref], forget=forget, config=config,
                 surrogate=local_ref).run()  # fmt: skip
    with FakeOIPServer(linear_model((8,), 10, seed=0)) as fake, RemoteModel(fake.url, RemoteSettings()) as client:
        served = Audit(subject, references=[remote_auditable(client), local_ref], forget=forget, config=config).run()
    for probe in ("gaussian", "fgsm"):
        assert np.array_equal(served.counts[probe].correct, twin.counts[probe].correct), probe
    assert served.counts["fgsm"].access == "transfer" and served.counts["fgsm"].models == ("subject", "fake")
    remote = served.to_dict()["remote"]
    assert [e["role"] for e in remote["endpoints"]] == ["reference"] and remote["surrogate"] == "ref-1"
    assert remote["access"] == {"gaussian": "predictions-only", "fgsm": "transfer"}
