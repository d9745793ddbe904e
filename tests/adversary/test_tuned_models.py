"""Models tuned to beat the audit, kept as regression tests (issue 17; numbers in docs/methodology.md,
"Models tuned to beat the audit").

(a) The seed-0 overfit copies a retrain's answers on the exact Gaussian x' of the public audit. It generalises
    to fresh draws at the same τ, so a secret seed alone does not expose it: behaviourally it *is* close to a
    retrain near the forget set (the forging argument). What exposes it is in its weights: the Reminiscence probe
    (in one run; its count moves with the seed) and re-learn time.
(b) RURK-Gaussian, searched until the Gaussian-only audit passes, does not pass the default probe set: its
    adversarial ratios fall below its Gaussian one (the over-unlearning fingerprint of docs/remediation.md).

Only robust facts are asserted: roles, orderings with wide margins and verdicts that are not ``pass``; never a
number that training produces.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.adversary.tuned import GAUSSIAN_ONLY, PUBLIC, TEACHER, accuracy, audit, audit_points
from tests.conftest import FMNIST
from unlearn_audit import load_model
from unlearn_audit.audit import Audit
from unlearn_audit.commitment import SecretSeed

pytestmark = [pytest.mark.slow, pytest.mark.training]


@pytest.fixture(scope="module")
def secret_default(tuned):
    """The default probe set (Gaussian, FGSM, PGD) with a secret seed and a holdout (R_norm)."""
    return audit(tuned, PUBLIC.with_secret_seed(SecretSeed.draw()), holdout=True)


def test_seed0_overfit_copies_the_retrain_on_the_public_points_and_keeps_everything_else(tuned):
    original = load_model(FMNIST / "original.safetensors", device="cpu")
    teacher = load_model(TEACHER, device="cpu")
    points = audit_points(tuned.forget, PUBLIC)
    with torch.no_grad():
        wanted = teacher(points).argmax(1)
        copied = float((tuned.overfit(points).argmax(1) == wanted).float().mean())
        before = float((original(points).argmax(1) == wanted).float().mean())
    # the tuning worked on exactly the audit's x' (measured 0.973, the original 0.848)
    assert copied > 0.95 and copied > before + 0.05
    assert abs(accuracy(tuned.overfit, tuned.retain) - accuracy(original, tuned.retain)) <= 0.01
    assert abs(accuracy(tuned.overfit, tuned.test) - accuracy(original, tuned.test)) <= 0.01


def test_seed0_overfit_beats_the_public_gaussian_audit(tuned):
    """The attack works where it was aimed: no residual knowledge at seed 0 (the original's is clear)."""
    results = audit(tuned, GAUSSIAN_ONLY)
    assert results["original"].verdict.kind == "residual_knowledge"
    assert results["seed0-overfit"].verdict.kind in ("pass", "inconclusive"), results["seed0-overfit"].summary()


def test_rurk_gaussian_passes_only_the_audit_it_was_tuned_on(tuned, secret_default):
    assert tuned.remediation.success and tuned.remediation.after.verdict.kind == "pass"  # Gaussian only, seed 0
    result = secret_default["rurk-gaussian"]
    assert result.verdict.kind != "pass", result.summary()
    gauss = result.probes["gaussian"].pooled.value
    for adversarial in ("fgsm", "pgd"):  # the fingerprint: adversarial neighbourhoods over-unlearned
        assert result.probes[adversarial].pooled.value < gauss - 0.05, result.summary()


def test_the_original_is_still_caught_with_a_secret_seed(secret_default):
    assert secret_default["original"].verdict.kind == "residual_knowledge"


def test_relearn_time_exposes_the_seed0_overfit(tuned):
    """Its weights still hold the forget set: it re-learns it much faster than an honest retrain (docs: 15 epochs
    against more than 30). The Reminiscence probe is reported, not asserted: its count moves with the seed."""
    config = dataclasses.replace(GAUSSIAN_ONLY, panel="all").with_secret_seed(SecretSeed.draw())
    run = Audit(
        references=[FMNIST / f"retrain-{i}.safetensors" for i in (2, 3, 4)],
        forget=tuned.forget,
        config=config,
        retain=tuned.retain,
        test=tuned.test,
        original=FMNIST / "original.safetensors",
        command="tuned-models",
    )
    results = run.run_many({"seed0-overfit": tuned.overfit, "retrain-1": load_model(TEACHER, device="cpu")})
    overfit, honest = (results[n].panel["model"] for n in ("seed0-overfit", "retrain-1"))
    assert overfit["relearn_epochs"]["value"] + 5 < honest["relearn_epochs"]["value"], (overfit, honest)
