"""bf16 for crafting only (issue 15): FGSM/PGD rows crafted with bf16 gradients, always scored in fp32.

* explicit ``craft_precision="bf16"``: the Gaussian probe's counts are untouched (nothing is crafted), and the
  adversarial probes keep their strength (robust accuracy per τ within 3 points of fp32 crafting);
* ``auto``: an explicit ``precision`` governs crafting too (the cross-checks against torchattacks and ART run in
  fp32 throughout); with ``precision="auto"`` the crafting check decides, and says why;
* the counts, the reference cache key and the JSON record the crafting precision, so a cache entry crafted in one
  precision is never used for the other;
* the crafting check reads the same rows whatever the order of the forget set (a sequential audit reads it
  permuted).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import FMNIST, assert_one_line_error
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.errors import ConfigError
from unlearn_audit.io.models import load_model
from unlearn_audit.probes import EngineConfig, make_engine, make_probe, preparation
from unlearn_audit.probes.adversarial import PGDProbe
from unlearn_audit.probes.preparation import check_rows, choose_crafting_precision
from unlearn_audit.reference_cache import model_identity, reference_key

TAUS = (0.0, 4 / 255, 8 / 255)
FP32 = EngineConfig(taus=TAUS, draws=4, seed=7, precision="fp32", craft_precision="fp32", device="cpu")
BF16 = dataclasses.replace(FP32, craft_precision="bf16")


@pytest.fixture(scope="module")
def models():
    return [load_model(FMNIST / name) for name in ("original.safetensors", "retrain-1.safetensors")]


@pytest.fixture(scope="module")
def samples():
    forget = load_samples(FMNIST / "forget.npz")
    return forget.subset(range(120), source=forget.source)


@pytest.fixture(scope="module")
def engines(models, samples):
    return make_engine(models, samples, FP32), make_engine(models, samples, BF16)


def robust_accuracy(counts) -> np.ndarray:
    return counts.correct[0, 0].sum(0) / (counts.correct.shape[2] * counts.draws)


def test_gaussian_counts_do_not_depend_on_the_crafting_precision(engines):
    fp32, bf16 = (e.run(make_probe("gaussian")) for e in engines)
    assert np.array_equal(fp32.correct, bf16.correct) and np.array_equal(fp32.disagree, bf16.disagree)
    assert fp32.precision == bf16.precision == "fp32"


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_bf16_crafting_keeps_the_attack_strength(engines, name):
    probe = PGDProbe(steps=5) if name == "pgd" else make_probe(name)
    fp32, bf16 = (e.run(probe) for e in engines)
    assert bf16.precision == "fp32 (crafted in bf16)" and fp32.precision == "fp32"
    a32, a16 = robust_accuracy(fp32), robust_accuracy(bf16)
    assert a32[0] == a16[0]  # τ = 0: the clean input, nothing crafted
    assert np.abs(a32 - a16).max() <= 0.03, (a32, a16)  # measured here: 0.015 (FGSM), 0.008 (PGD-5) at 8/255
    changed = float(np.mean(fp32.correct != bf16.correct))
    assert changed <= 0.06, changed  # measured: 0.012, 0.018; most (model, sample, τ) counts are the same integers


def test_an_explicit_precision_governs_crafting(models, samples):
    engine = make_engine(models, samples, dataclasses.replace(FP32, craft_precision="auto"))
    assert engine.crafting_precision == "fp32"
    assert engine.crafting_decision.reason == "as the evaluation precision" and engine.crafting_decision.rows == 0


def test_the_crafting_check_decides_both_ways(models, samples, engines, monkeypatch):
    prepared, device = engines[0].models, engines[0].device
    monkeypatch.setattr(preparation, "bf16_supported", lambda _device: True)
    monkeypatch.setattr(preparation, "MAX_CRAFT_DISAGREEMENT", 1.0)
    monkeypatch.setattr(preparation, "MAX_CRAFT_STRENGTH_LOSS", 1.0)
    lenient = choose_crafting_precision(prepared, samples, TAUS, device, 3, 10)
    assert lenient.precision == "bf16" and lenient.rows == len(samples)
    assert set(lenient.check) == {"original", "retrain-1"}
    for row in lenient.check.values():
        assert set(row) == {"success_fp32", "success_bf16", "disagreement"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    monkeypatch.setattr(preparation, "MAX_CRAFT_DISAGREEMENT", -1.0)
    strict = choose_crafting_precision(prepared, samples, TAUS, device, 3, 10)
    assert strict.precision == "fp32" and "rows crafted in fp32" in strict.reason
    assert strict.check == lenient.check  # the same seeded rows and targets
    assert choose_crafting_precision(prepared, samples, (0.0,), device, 3, 10).reason == "no τ > 0: nothing is crafted"
    monkeypatch.setattr(preparation, "bf16_supported", lambda _device: False)
    assert choose_crafting_precision(prepared, samples, TAUS, device, 3, 10).precision == "fp32"


def test_the_check_rows_do_not_depend_on_the_order_of_the_forget_set(samples):
    order = np.random.default_rng(0).permutation(len(samples))
    permuted = samples.subset(order, source=samples.source)
    for seed in (0, 1, 2**127 + 3):
        rows = [samples.ids[i] for i in check_rows(samples, seed, 16)]
        assert rows == [permuted.ids[i] for i in check_rows(permuted, seed, 16)]
    assert check_rows(samples, 0, 16).tolist() != check_rows(samples, 1, 16).tolist()


def test_only_our_gradient_probes_carry_the_crafting_precision(engines):
    """FGSM and PGD craft in ``ChunkContext.autocast``; ART's AutoPGD and the query-based Square Attack do not,
    so their counts (and cache keys) never say "crafted in bf16"."""
    bf16 = engines[1]
    labels = {
        name: bf16.precision_for(make_probe(name)) for name in ("gaussian", "fgsm", "pgd-l2", "autopgd", "square")
    }
    assert labels == {
        "gaussian": "fp32",
        "fgsm": "fp32 (crafted in bf16)",
        "pgd-l2": "fp32 (crafted in bf16)",
        "autopgd": "fp32",
        "square": "fp32",
    }


def test_the_cache_key_separates_crafting_precisions(engines, models):
    identities = [model_identity(models[1])]
    fp32, bf16 = engines
    for name, same in (("gaussian", True), ("fgsm", False)):
        probe = make_probe(name)
        keys = {reference_key(e, probe, name, 4, identities) for e in (fp32, bf16)}
        assert (len(keys) == 1) == same


def test_the_json_says_how_rows_were_crafted(models, samples):
    config = AuditConfig(
        probes=("gaussian", "fgsm"), taus=TAUS, draws=2, bootstrap=200, seed=1, panel="none", precision="fp32"
    )
    runs = {}
    for craft in ("auto", "bf16"):
        audit = Audit(
            references=[models[1]],
            forget=samples,
            config=dataclasses.replace(config, craft_precision=craft),
            cache_dir=False,
        )
        runs[craft] = audit.run(models[0]).to_dict()
    assert "crafting" not in runs["auto"]["precision"] and "craft_precision" not in runs["auto"]["config"]
    crafting = runs["bf16"]["precision"]["crafting"]
    assert crafting["used"] == "bf16" and crafting["requested"] == "bf16" and crafting["reason"] == "set explicitly"
    assert runs["bf16"]["config"]["craft_precision"] == "bf16"
    assert runs["auto"]["probes"]["gaussian"]["pooled"] == runs["bf16"]["probes"]["gaussian"]["pooled"]


def test_the_json_says_why_the_crafting_check_kept_fp32(models, samples, monkeypatch):
    """A refused crafting check (rows crafted and scored in fp32) is in the JSON too, with its numbers: a user
    whose rows stayed fp32 can see why. A Gaussian-only audit never runs the check and has no such entry."""
    monkeypatch.setattr(
        preparation, "choose_precision", lambda *a, **k: preparation.PrecisionDecision("fp32", {}, 8, "stub")
    )
    check = {"m": {"success_fp32": 0.5, "success_bf16": 0.4, "disagreement": 0.03}}
    refusal = preparation.CraftingDecision("fp32", check, 8, "stub refusal: rows crafted in fp32")
    monkeypatch.setattr(preparation, "choose_crafting_precision", lambda *a, **k: refusal)
    config = AuditConfig(probes=("gaussian", "fgsm"), taus=TAUS, draws=2, bootstrap=200, seed=1, panel="none")
    doc = Audit(references=[models[1]], forget=samples, config=config, cache_dir=False).run(models[0]).to_dict()
    assert doc["precision"]["used"] == "fp32"
    assert doc["precision"]["crafting"] == {
        "used": "fp32", "requested": "auto", "reason": refusal.reason, "check": check, "check_rows": 8,
    }  # fmt: skip
    from unlearn_audit.report.html import render_html
    from unlearn_audit.report.json import prepare

    assert "FGSM/PGD rows crafted in fp32 (stub refusal: rows crafted in fp32)" in render_html(prepare(doc))
    gaussian = dataclasses.replace(config, probes=("gaussian",))
    doc = Audit(references=[models[1]], forget=samples, config=gaussian, cache_dir=False).run(models[0]).to_dict()
    assert "crafting" not in doc["precision"]


def test_bad_crafting_precisions_are_one_line_errors(cli):
    with pytest.raises(ConfigError, match="--craft-precision 'bf8'"):
        EngineConfig(craft_precision="bf8")  # type: ignore[arg-type]
    command = ("check", FMNIST / "original.safetensors", "--forget", FMNIST / "forget.npz", "--reference",
               FMNIST / "retrain-1.safetensors", "--probes", "fgsm", "--draws", "1", "--panel", "none")  # fmt: skip
    assert_one_line_error(cli(*command, "--craft-precision", "bf8"), "--craft-precision 'bf8'", "auto, fp32, bf16")
    assert_one_line_error(
        cli(*command, "--engine", "art", "--craft-precision", "bf16"), "--craft-precision bf16", "art crafts in fp32"
    )


def test_the_holdout_is_crafted_and_scored_as_the_forget_set(models, samples, monkeypatch):
    """R_norm divides by the holdout's ratio: its rows must be crafted and scored in the forget set's precision,
    even where the checks, run on other samples, would have decided otherwise."""
    from unlearn_audit.counting import CountPlan
    from unlearn_audit.probes import make_probes

    def by_size(prepared, rows, taus, device, seed, num_classes):
        chosen = "bf16" if len(rows) == len(samples) else "fp32"
        return preparation.CraftingDecision(chosen, {}, len(rows), f"stub: {chosen}")

    monkeypatch.setattr(preparation, "choose_crafting_precision", by_size)
    test = load_samples(FMNIST / "test.npz")
    holdout = test.subset(range(40), source=test.source)
    config = AuditConfig(probes=("gaussian", "fgsm"), taus=TAUS, draws=2, bootstrap=200, panel="none", precision="auto")
    audit = Audit(references=[models[1]], forget=samples, holdout=holdout, config=config, cache_dir=False)
    plan = CountPlan.build(audit, [models[0]], make_probes(["gaussian", "fgsm"]), audit.forget)
    forget_engine, (held_engine, _) = plan.engine, plan.held
    assert forget_engine.crafting_precision == "bf16" or forget_engine.precision == "bf16"
    assert held_engine.precision == forget_engine.precision
    assert held_engine.crafting_precision == forget_engine.crafting_precision
    assert plan.engine_cfg.craft_precision == "auto"  # the forget set's own config is left as asked
