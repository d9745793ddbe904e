"""The engine's reference side: counts computed with a stored reference side are the integers a full run gives,
whatever the chunking, sharding, number of references or subjects; the draw numbering behind the stored
predictions matches a slow, obvious count."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from unlearn_audit.io.models import wrap_model
from unlearn_audit.io.samples import samples_from_tensors
from unlearn_audit.probes import EngineConfig, make_engine, make_probes
from unlearn_audit.probes.engine import draw_slots
from unlearn_audit.probes.reference_side import ReferenceSide


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5)
    )


@pytest.fixture(scope="module")
def setting():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(23, 1, 8, 8, generator=gen)
    y = torch.randint(0, 5, (23,), generator=gen)
    samples = samples_from_tensors(x, y, source="unit")
    models = [wrap_model(_net(s), name=f"m{s}", num_classes=5, input_shape=(1, 8, 8)) for s in range(5)]
    return samples, models


CFG = EngineConfig(taus=(0.0, 0.05, 0.2), draws=6, seed=3, precision="fp32", batch_size=16, chunk_size=7)


@pytest.mark.parametrize("probe", ["gaussian", "uniform-l2", "fgsm", "pgd", "fgsm-untargeted"])
@pytest.mark.parametrize(("subjects", "references"), [(1, 1), (1, 2), (1, 3), (2, 2)])
def test_counts_with_a_stored_reference_side_are_identical(setting, probe, subjects, references):
    samples, models = setting
    chosen = models[: subjects + references]
    engine = make_engine(chosen, samples, CFG, subjects=subjects)
    (p,) = make_probes([probe])
    full = engine.run(p)
    other_chunks = make_engine(chosen, samples, dataclasses.replace(CFG, chunk_size=5), subjects=subjects)
    side = other_chunks.reference_side(p)  # computed with another chunking: draw numbers do not depend on it
    assert isinstance(side, ReferenceSide) and side.references == references
    assert side.has_blocks == (p.adversarial and references >= 2)
    assert (side.predictions is not None) == (not p.adversarial)
    for sample_range in [None, (0, 9), (9, 23)]:
        fast = engine.run(p, reference_side=side, sample_range=sample_range)
        slow = full if sample_range is None else engine.run(p, sample_range=sample_range)
        assert np.array_equal(fast.correct, slow.correct)
        assert np.array_equal(fast.disagree, slow.disagree)
        assert np.array_equal(fast.evaluated_mask, slow.evaluated_mask)


def test_stored_predictions_match_a_slow_count(setting):
    """Each reference's stored labels, compared with the truth draw by draw, give its ``correct`` counts."""
    samples, models = setting
    engine = make_engine(models[:3], samples, CFG)
    (p,) = make_probes(["gaussian"])
    side = engine.reference_side(p)
    counts = engine.run(p)
    assert side.predictions is not None and side.predictions.dtype == np.uint8
    hits = (side.predictions == samples.y.numpy()[None, :, None, None]).sum(axis=3)
    assert np.array_equal(hits, counts.correct[0, 1:])
    assert np.all(side.predictions[:, :, 0, :] == side.predictions[:, :, 0, :1])  # τ = 0: one input for all draws


def test_a_reference_side_for_other_settings_is_refused(setting):
    samples, models = setting
    engine = make_engine(models[:3], samples, CFG)
    (p,) = make_probes(["gaussian"])
    side = make_engine(models[:3], samples, dataclasses.replace(CFG, draws=5)).reference_side(p)
    with pytest.raises(Exception, match="other settings"):
        engine.run(p, reference_side=side)


def test_take_restricts_samples(setting):
    samples, models = setting
    engine = make_engine(models[:3], samples, CFG)
    side = engine.reference_side(make_probes(["fgsm"])[0])
    part = side.take(np.array([2, 5]))
    assert part.sample_ids == (samples.ids[2], samples.ids[5])
    assert part.correct is not None and side.correct is not None
    assert np.array_equal(part.correct, side.correct[:, :, [2, 5]])
    assert part.digest() != side.digest()


def test_draw_slots_number_draws_within_units():
    """Rows of one unit in one batch are numbered in order; earlier batches' draws are skipped."""
    flat = torch.tensor([3, 3, 1, 3, 1, 0])
    weight = torch.tensor([1, 1, 4, 1, 1, 5])
    seen = torch.zeros(5, dtype=torch.long)
    seen[3] = 2
    slots = draw_slots(flat, weight, seen, draws=5)
    assert slots.tolist() == [2, 3, 0, 4, 4, 0]
    with pytest.raises(RuntimeError, match="accounting"):
        draw_slots(torch.tensor([0, 0]), torch.tensor([3, 3]), torch.zeros(1, dtype=torch.long), draws=5)
