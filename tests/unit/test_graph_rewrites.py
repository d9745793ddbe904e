"""Graph rewrites for every traceable model, not only after BatchNorm folding: max-pool before ReLU on a plain
VGG-style net (no BatchNorm) is bit-exact, and an untraceable net runs as written."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from unlearn_audit.io.models import wrap_model
from unlearn_audit.io.samples import samples_from_tensors
from unlearn_audit.probes import EngineConfig, make_engine, make_probes
from unlearn_audit.probes.adversarial import input_gradient
from unlearn_audit.probes.preparation import preparation_signature, prepare_models


def _vgg(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if h.mean() > 0:
            h = h * 1.0
        return self.head(self.pool(h).flatten(1))


def test_plain_vgg_gets_pool_before_relu_bit_exact():
    model = wrap_model(_vgg(0), name="vgg", num_classes=10, input_shape=(1, 28, 28))
    rewritten = prepare_models([model], torch.device("cpu"), True, False, fuse_batchnorm=True)[0].module
    plain = prepare_models([model], torch.device("cpu"), True, False, fuse_batchnorm=False)[0].module
    code = rewritten.net.code
    assert code.index('"2")(_0)') < code.index('"1")(_2)')  # the first max-pool now runs before its ReLU
    assert preparation_signature(rewritten).startswith("fx:") and preparation_signature(plain) == "module:Sequential"
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(rewritten(x), plain(x))
    assert torch.equal(input_gradient(rewritten, x, y), input_gradient(plain, x, y))
    assert isinstance(model.net, nn.Sequential)  # the caller's model is untouched


def test_counts_are_identical_with_and_without_the_rewrite():
    gen = torch.Generator().manual_seed(2)
    samples = samples_from_tensors(torch.rand(12, 1, 28, 28, generator=gen), torch.randint(0, 10, (12,), generator=gen))
    models = [wrap_model(_vgg(s), name=f"m{s}", num_classes=10, input_shape=(1, 28, 28)) for s in range(3)]
    cfg = EngineConfig(taus=(0.0, 0.03), draws=3, precision="fp32")
    on = make_engine(models, samples, cfg)
    off = make_engine(models, samples, EngineConfig(**{**cfg.__dict__, "fuse_batchnorm": False}))
    for probe in make_probes("gaussian,fgsm,pgd"):
        a, b = on.run(probe), off.run(probe)
        assert np.array_equal(a.correct, b.correct) and np.array_equal(a.disagree, b.disagree)


def test_untraceable_models_run_as_written(caplog):
    model = wrap_model(Branchy(), name="branchy", num_classes=10, input_shape=(1, 28, 28))
    with caplog.at_level(logging.INFO, logger="unlearn_audit.probes.preparation"):
        prepared = prepare_models([model], torch.device("cpu"), False, False)[0].module
    assert isinstance(prepared.net, Branchy)
    assert any("not traceable" in r.getMessage() for r in caplog.records)
