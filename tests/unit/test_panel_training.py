"""Re-learn time bookkeeping on a tiny model: the count, the cap and its JSON form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearn_audit.metrics.relearn import RelearnSettings, forget_loss, relearn_epochs


def _toy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 2)), x, y


@pytest.mark.training
def test_already_at_target_reads_zero_and_the_input_model_is_untouched():
    model, x, y = _toy()
    before = [p.detach().clone() for p in model.parameters()]
    out = relearn_epochs(model, x, y, target_loss=forget_loss(model, x, y) + 1.0)
    assert (out.epochs, out.censored) == (0, False)
    out = relearn_epochs(model, x, y, target_loss=0.0, settings=RelearnSettings(lr=0.1, cap=2))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert out.censored and out.epochs == 2 and len(out.losses) == 3
    assert out.to_dict(2) | {"losses": None} == {
        "value": 3,
        "lo": None,
        "hi": None,
        "censored": True,
        "display": ">2",
        "target_loss": 0.0,
        "losses": None,
    }


@pytest.mark.training
def test_counts_epochs_until_the_target_and_is_deterministic():
    model, x, y = _toy()
    start = forget_loss(model, x, y)
    settings = RelearnSettings(lr=0.5, momentum=0.0, batch_size=16, cap=30)
    first = relearn_epochs(model, x, y, 0.7 * start, settings=settings, seed=3)
    again = relearn_epochs(model, x, y, 0.7 * start, settings=settings, seed=3)
    assert not first.censored and first.epochs >= 1 and first.losses == again.losses
    assert first.losses[-1] <= 0.7 * start < min(first.losses[:-1])
