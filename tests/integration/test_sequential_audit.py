"""Sequential audits (``check --stop-early``) on the bundled Fashion-MNIST panel: the samples seen get the full
audit's counts, a clear model stops early with the full audit's verdict, the JSON says what was used, and bad
settings are one-line errors. The statistical guarantees are simulated in tests/unit/test_sequential_simulation.py."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import FMNIST
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.cli.app import main
from unlearn_audit.errors import ConfigError
from unlearn_audit.io.samples import load_samples
from unlearn_audit.report.json import validate

REFS = [FMNIST / f"retrain-{i}.safetensors" for i in (1, 2, 3)]
CONFIG = AuditConfig(
    probes=("gaussian", "fgsm"), taus=(0.0, 4 / 255, 8 / 255), draws=6, bootstrap=400, panel="none", seed=3
)
SEQUENTIAL = dataclasses.replace(CONFIG, stop_early=True)


@pytest.fixture(scope="module")
def forget():
    return load_samples(FMNIST / "forget.npz").subset(np.arange(240))


@pytest.fixture(scope="module")
def full(forget):
    audit = Audit(references=REFS, forget=forget, config=CONFIG, cache_dir=False)
    return audit.run_many({"ga": FMNIST / "ga.safetensors", "retrain-4": FMNIST / "retrain-4.safetensors"})


@pytest.fixture(scope="module")
def sequential(forget):
    return Audit(references=REFS, forget=forget, config=SEQUENTIAL, cache_dir=False)


def test_a_clear_model_stops_early_with_the_full_audits_verdict(full, sequential):
    result = sequential.run(FMNIST / "ga.safetensors")
    seq = result.sequential
    assert full["ga"].verdict.kind == result.verdict.kind == "over_unlearning"
    assert seq["stopped_early"] and seq["stopped_at_look"] < len(seq["planned_looks"])
    assert seq["samples_used"] == seq["looks"][-1]["samples"] < seq["samples_total"] == 240
    assert seq["evaluations_used"] / seq["evaluations_full"] == pytest.approx(seq["samples_used"] / 240)
    assert all(p["decided"] == "below" for p in seq["looks"][-1]["probes"].values())
    levels = seq["design"]["levels"]
    assert result.probes["gaussian"].pooled.level == pytest.approx(levels[seq["stopped_at_look"] - 1])
    assert levels == sorted(levels, reverse=True) and levels[-1] > result.config.policy.verdict_level(2)
    assert any("Per-sample evidence covers only" in note for note in result.notes)
    assert len(result.counts["gaussian"].sample_ids) == seq["samples_used"]
    validate(result.to_dict())


def test_the_samples_seen_get_the_full_audits_counts(full, sequential):
    """Every sample's draws are keyed by its id: the seeded order and the looks change which samples are counted,
    never their counts."""
    result = sequential.run(FMNIST / "ga.safetensors")
    for name, counts in result.counts.items():
        whole = full["ga"].counts[name]
        position = {sid: i for i, sid in enumerate(whole.sample_ids)}
        index = [position[sid] for sid in counts.sample_ids]
        assert index != sorted(index)  # a seeded random order, not the file's
        np.testing.assert_array_equal(counts.correct, whole.correct[:, :, index])
        np.testing.assert_array_equal(counts.disagree, whole.disagree[:, :, index])


def test_an_honest_retrain_is_never_a_finding_and_the_reference_side_fills_across_runs(full, sequential):
    result = sequential.run(FMNIST / "retrain-4.safetensors")
    assert full["retrain-4"].verdict.kind in ("pass", "inconclusive")
    assert result.verdict.kind in ("pass", "inconclusive")
    cache = result.provenance["reference_cache"]
    assert cache["entries"], "the references' share was reused from the earlier model's looks"


def test_same_seed_same_json_and_another_seed_another_order(forget):
    def doc(seed: int) -> dict:
        config = dataclasses.replace(SEQUENTIAL, seed=seed, probes=("gaussian",))
        result = Audit(references=REFS[:2], forget=forget, config=config, cache_dir=False).run(
            FMNIST / "gd.safetensors"
        )
        out = result.to_dict()
        out.pop("provenance")
        out.pop("binding")
        return out

    first, again = doc(5), doc(5)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert doc(6)["sequential"]["looks"][0]["probes"] != first["sequential"]["looks"][0]["probes"]


def test_per_sample_all_flags_every_sample_but_keeps_the_stopping_looks_verdict(forget):
    config = dataclasses.replace(SEQUENTIAL, probes=("gaussian",), per_sample="all")
    result = Audit(references=REFS, forget=forget, config=config, cache_dir=False).run(FMNIST / "ga.safetensors")
    assert result.sequential["stopped_early"] and result.sequential["per_sample"] == "all"
    assert result.sample_evidence["samples_tested"] == 240 > result.sequential["samples_used"]
    assert any("Per-sample evidence covers every sample" in note for note in result.notes)


def test_stop_early_needs_references_and_one_process(forget):
    with pytest.raises(ConfigError, match="--stop-early"):
        Audit(forget=forget, holdout=forget, config=SEQUENTIAL, cache_dir=False).run(FMNIST / "ga.safetensors")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--looks", "1/4,1"], "--looks: only with --stop-early"),
        (["--stop-early", "--looks", "1/2,1/4,1"], "give increasing shares"),
        (["--stop-early", "--looks", "1/4,1/2"], "the last look must see every sample"),
        (["--stop-early", "--looks", "1/4,x,1"], "is not a number"),
        (["--stop-early", "--spending", "linear"], "--spending 'linear'"),
        (["--stop-early", "--per-sample", "some"], "--per-sample 'some'"),
    ],
)
def test_bad_sequential_options_are_one_line_errors(args, message, capsys):
    code = main(
        [
            "check",
            str(FMNIST / "ga.safetensors"),
            "--forget",
            str(FMNIST / "forget.csv"),
            "--reference",
            str(REFS[0]),
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_stop_early_with_draws_auto_runs_the_pilot_first(forget):
    """Both ways of spending less work together: the pilot picks the draws, then the looks use them."""
    config = dataclasses.replace(SEQUENTIAL, probes=("gaussian",), draws_auto=True)
    result = Audit(references=REFS, forget=forget, config=config, cache_dir=False).run(FMNIST / "ga.safetensors")
    chosen = result.to_dict()["draws_auto"]["probes"]["gaussian"]["draws"]
    assert result.counts["gaussian"].draws == chosen
    assert result.verdict.kind == "over_unlearning" and result.sequential["stopped_early"]


def test_a_policy_tau_range_without_a_grid_tau_is_a_one_line_error(capsys):
    code = main(
        ["check", str(FMNIST / "ga.safetensors"), "--forget", str(FMNIST / "forget.csv"), "--reference", str(REFS[0]),
         "--taus", "0,0.01", "--tau-min", "0.5"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "contain no τ of the grid" in err and len(err.strip().splitlines()) == 1
