"""The query-based probe (``square``: ART's Square Attack) against the fake server: crafted on the served model
from its answers alone, on each local reference the same way (per anchor, symmetric), and within its stated
query cost, counted by the server."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.remote.fake_oip import FakeOIPServer
from unlearn_audit.config import AuditConfig
from unlearn_audit.errors import ConfigError
from unlearn_audit.io.models import wrap_model
from unlearn_audit.io.remote import RemoteModel, RemoteSettings
from unlearn_audit.io.remote.subject import remote_auditable
from unlearn_audit.io.sampleset import Samples
from unlearn_audit.probes import EngineConfig
from unlearn_audit.probes.engines import make_engine
from unlearn_audit.probes.query import SquareProbe

pytestmark = pytest.mark.timeout(300)
SHAPE = (1, 8, 8)


def local_reference(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return wrap_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), name=f"reference-{seed}")


def tiny_set(fake: FakeOIPServer, n: int = 12) -> Samples:
    """Inputs the served linear model classifies as their label: the attack has something to flip."""
    x = torch.rand(4 * n, *SHAPE, generator=torch.Generator().manual_seed(0))
    y = torch.from_numpy(fake.model(x.numpy()).argmax(axis=1))
    return Samples(x=x[:n], y=y[:n], ids=tuple(f"s{i}" for i in range(n)))


def test_square_is_query_based_and_stays_within_its_stated_cost():
    iterations, taus, n = 4, (0.0, 0.05, 0.2), 12
    with FakeOIPServer(input_shape=SHAPE) as fake:
        samples = tiny_set(fake, n)
        settings = RemoteSettings(recheck_rate=0.0, batch_size=16, concurrency=2)
        with RemoteModel(fake.url, settings) as client:
            models = [remote_auditable(client), local_reference(1), local_reference(2)]
            engine = make_engine(models, samples, EngineConfig(taus=taus, draws=2, seed=5, device="cpu"))
            probe = SquareProbe(iterations=iterations)
            counts = engine.run(probe)
            usage = client.usage_dict()
    assert counts.access == "query-based" and counts.adversarial  # crafted per anchor, like white-box
    assert counts.crafted_on == (0, 1, 2)  # the served model through its answers, each reference the same way
    assert engine.precision == "fp32"  # no bf16 check: it would only cost queries
    bound = n + n * (len(taus) - 1) * 2 * probe.max_rows_per_attack  # clean rows + the stated cost per attack
    assert usage["rows_sent"] == fake.answered_rows <= bound
    assert usage["rows_sent"] > n  # the attack did query the endpoint
    assert probe.config()["query_cost"] == {"max_rows_per_sample_tau_draw": iterations + 2}
    u = counts.correct[0, 0]  # served model, its own rows: the attack flips some answers at τ = 0.2
    assert (u[:, 0] == 2).all() and u[:, 2].sum() < u[:, 0].sum()


def test_square_defaults_to_one_draw_and_needs_images():
    assert AuditConfig(probes=("gaussian", "square"), draws=50).draws_for("square") == 1
    assert AuditConfig(probes=("square",), probe_draws=(("square", 3),)).draws_for("square") == 3
    flat = Samples(x=torch.rand(4, 8), y=torch.zeros(4, dtype=torch.long), ids=("a", "b", "c", "d"))
    with pytest.raises(ConfigError, match="needs image inputs"):
        SquareProbe().perturb(nn.Linear(8, 10), flat.x, flat.y, 0.1, torch.Generator(), num_classes=10)
