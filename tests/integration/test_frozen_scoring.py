"""Frozen inference graphs for scoring (unlearn_audit/probes/frozen.py): built only where safe, checked against
the module, the same counts as eager scoring, and told apart in the cache keys. On networks written here, not
taken from the registry, and on the bundled models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import FMNIST
from unlearn_audit import load_samples, wrap_model
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io.models import load_model
from unlearn_audit.probes import EngineConfig, make_engine, make_probe
from unlearn_audit.probes.frozen import FREEZE_MIN_ROWS, build_scorers, frozen_scorer
from unlearn_audit.reference_cache import model_identity, reference_key

TAUS = (0.0, 4 / 255, 8 / 255)
CONFIG = EngineConfig(taus=TAUS, draws=40, seed=3, precision="fp32", craft_precision="fp32", device="cpu")


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.head = nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        h = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(h.flatten(1))


class DataDependent(Plain):
    def forward(self, x):  # control flow on values: torch.fx cannot trace it, one jit trace would bake a branch
        h = self.conv(x)
        if h.mean() > 0:
            h = torch.relu(h)
        return self.head(torch.max_pool2d(h, 2).flatten(1))


def _rows(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _wrapped(net: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return wrap_model(net.eval(), name=type(net).__name__, num_classes=10, input_shape=(1, 28, 28))


def test_a_plain_network_gets_a_frozen_graph_with_its_predictions():
    model = _wrapped(Plain())
    scorer = frozen_scorer(model, _rows())
    assert scorer is not None
    x = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(scorer(x).argmax(1), model(x).argmax(1))
        assert torch.allclose(scorer(x), model(x), rtol=1e-4, atol=1e-5)


def test_an_untraceable_network_is_scored_eagerly(caplog):
    caplog.set_level("INFO")
    assert frozen_scorer(_wrapped(DataDependent()), _rows(), "stranger") is None
    assert "stranger: scored eagerly (not traceable by torch.fx" in caplog.text


def test_a_graph_that_disagrees_with_its_module_is_not_used(monkeypatch, caplog):
    """The check on rows of another batch size than the trace's: a graph whose logits or predictions differ
    from the module's (here one class is boosted on every row but the first) is dropped."""

    class Drifting(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x).clone()
            out[1:, 3] += 1e-2 * out.abs().max()
            return out

    caplog.set_level("INFO")
    monkeypatch.setattr(torch.jit, "optimize_for_inference", Drifting)
    assert frozen_scorer(_wrapped(Plain()), _rows(), "drifting") is None
    assert "drifting: scored eagerly (its frozen graph disagrees with the module)" in caplog.text


def test_only_large_fp32_cpu_audits_build_graphs():
    modules, names = [_wrapped(Plain())], ["m"]
    assert build_scorers(modules, names, _rows(), "fp32", FREEZE_MIN_ROWS).keys() == {0}
    assert build_scorers(modules, names, _rows(), "fp32", FREEZE_MIN_ROWS - 1) == {}
    assert build_scorers(modules, names, _rows(), "bf16", FREEZE_MIN_ROWS) == {}


@pytest.fixture(scope="module")
def bundled():
    models = [load_model(FMNIST / f"{name}.safetensors") for name in ("original", "retrain-1", "retrain-2")]
    forget = load_samples(FMNIST / "forget.npz")
    samples = forget.subset(range(150), source=forget.source)  # 150 x 3 τ x 40 draws = 18,000 rows per probe
    frozen = make_engine(models, samples, CONFIG)
    eager = make_engine(models, samples, dataclasses.replace(CONFIG, freeze_scoring=False))
    return models, samples, frozen, eager


def test_the_bundled_models_are_frozen_and_count_as_eagerly(bundled):
    _, _, frozen, eager = bundled
    assert sorted(frozen.scorers) == [0, 1, 2] and eager.scorers == {}
    for name in ("gaussian", "fgsm"):
        a, b = frozen.run(make_probe(name)), eager.run(make_probe(name))
        # the same function, its float operations in another order: a row on a boundary (~1e-6) may flip
        differing = int(np.sum(a.correct != b.correct))
        assert differing <= 0.001 * a.correct.size, (name, differing)


def test_the_cache_key_tells_frozen_from_eager_scoring(bundled):
    models, _, frozen, eager = bundled
    identities = [model_identity(m) for m in models[1:]]
    probe = make_probe("gaussian")
    assert reference_key(frozen, probe, "gaussian", 40, identities) != reference_key(
        eager, probe, "gaussian", 40, identities
    )


def test_a_non_boolean_frozen_scoring_is_a_one_line_error():
    """A report's config read back (AuditConfig.from_dict) with frozen_scoring "yes" is refused, not truthy."""
    from unlearn_audit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^frozen_scoring 'yes': use true or false$"):
        AuditConfig(frozen_scoring="yes")  # type: ignore[arg-type]


def test_eager_scoring_is_in_the_report_config_only_when_asked_for(bundled):
    models, samples, _, _ = bundled
    config = AuditConfig(probes=("gaussian",), taus=TAUS, draws=2, bootstrap=200, seed=1, panel="none")
    docs = [
        Audit(references=models[1:], forget=samples, config=dataclasses.replace(config, frozen_scoring=flag),
              cache_dir=False).run(models[0]).to_dict()
        for flag in (True, False)
    ]  # fmt: skip
    assert "frozen_scoring" not in docs[0]["config"] and docs[1]["config"]["frozen_scoring"] is False


def test_models_that_arrive_without_code(exported, caplog):
    """An ONNX file (converted by onnx2torch to a torch.fx graph) is frozen and scores as its module; a .pt2
    program runs as exported."""
    from unlearn_audit.probes.preparation import prepare_models

    caplog.set_level("INFO")
    rows = torch.rand(400, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    rows = rows.contiguous(memory_format=torch.channels_last)
    scorers = {}
    for kind, path in exported.items():
        (prepared,) = prepare_models([load_model(path)], torch.device("cpu"), True, False, True)
        scorers[kind] = (frozen_scorer(prepared.module, rows[:8], kind), prepared.module)
    assert scorers["pt2"][0] is None and "pt2: scored eagerly (an exported program" in caplog.text
    scorer, module = scorers["onnx"]
    assert scorer is not None
    with torch.no_grad():
        assert torch.equal(scorer(rows).argmax(1), module(rows).argmax(1))
