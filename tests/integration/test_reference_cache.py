"""The reference side of an audit, computed once: in memory, on disk, and never for the wrong inputs.

A cached band and a freshly computed one give the same JSON apart from ``provenance.reference_cache`` (and the
clock); a changed reference, forget set or seed misses the cache; a corrupt entry is ignored with a warning."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from tests.conftest import FMNIST
from unlearn_audit import load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io.models import load_model
from unlearn_audit.reference_cache import ReferenceCache, default_cache_dir

REFS = [FMNIST / f"retrain-{i}.safetensors" for i in (2, 3)]
MODEL = FMNIST / "gd.safetensors"
ORIGINAL = FMNIST / "original.safetensors"  # the strongest residual of the bundled models
CONFIG = AuditConfig(
    probes=("gaussian", "fgsm", "pgd"),
    taus=(0.0, 4 / 255, 8 / 255),
    draws=4,
    bootstrap=300,
    seed=5,
    panel="none",
    precision="fp32",
)


def _forget(n: int = 60, start: int = 0):
    forget = load_samples(FMNIST / "forget.npz")
    return forget.subset(range(start, start + n), source=forget.source)


def _audit(cache_dir, refs=REFS, forget=None, **overrides) -> Audit:
    config = AuditConfig(**{**CONFIG.__dict__, **overrides})
    return Audit(references=refs, forget=forget or _forget(), config=config, command="test", cache_dir=cache_dir)


def _without_cache_record(text: str) -> str:
    doc = json.loads(text)
    doc["provenance"].pop("time")
    doc["provenance"].pop("reference_cache")
    doc["provenance"]["files"] = None  # hashes of the document itself
    return json.dumps(doc)


def _sources(result) -> set[str]:
    return {entry["source"] for entry in result.provenance["reference_cache"]["entries"].values()}


def test_cached_band_gives_byte_identical_json(tmp_path):
    """Cold (computed and written), warm from disk (a new process, here a new Audit), warm from memory, and no
    cache at all: the same document apart from the cache record."""
    cold = _audit(tmp_path).run(MODEL)
    assert _sources(cold) == {"computed"} and cold.provenance["reference_cache"]["hit"] is False
    assert len(list((tmp_path / "reference-side").rglob("*.npz"))) == 3  # one entry per probe
    audit = _audit(tmp_path)
    disk = audit.run(MODEL)
    memory = audit.run(MODEL)
    uncached = _audit(False).run(MODEL)
    assert _sources(disk) == {"disk"} and disk.provenance["reference_cache"]["hit"] is True
    assert _sources(memory) == {"memory"}
    assert _sources(uncached) == {"computed"} and uncached.provenance["reference_cache"]["dir"] is None
    texts = {_without_cache_record(r.to_json()) for r in (cold, disk, memory, uncached)}
    assert len(texts) == 1
    keys = [e["key"] for e in cold.provenance["reference_cache"]["entries"].values()]
    assert keys == [e["key"] for e in disk.provenance["reference_cache"]["entries"].values()]


@pytest.mark.parametrize(
    "change",
    ["reference", "forget set", "seed", "draws", "taus"],
)
def test_changed_inputs_miss_the_cache(tmp_path, change):
    _audit(tmp_path).run(MODEL)
    changed = {
        "reference": lambda: _audit(tmp_path, refs=[REFS[0], FMNIST / "retrain-4.safetensors"]),
        "forget set": lambda: _audit(tmp_path, forget=_forget(start=1)),
        "seed": lambda: _audit(tmp_path, seed=6),
        "draws": lambda: _audit(tmp_path, draws=5),
        "taus": lambda: _audit(tmp_path, taus=(0.0, 4 / 255, 7 / 255)),
    }[change]()
    assert _sources(changed.run(MODEL)) == {"computed"}


def test_a_changed_reference_in_memory_misses(tmp_path):
    """Same file, changed weights (a model passed in memory): the key hashes the weights, not the path."""
    first = load_model(REFS[1])
    second = load_model(REFS[1])
    with torch.no_grad():
        next(second.parameters()).add_(1e-3)
    _audit(tmp_path, refs=[REFS[0], first]).run(MODEL)
    assert _sources(_audit(tmp_path, refs=[REFS[0], second]).run(MODEL)) == {"computed"}
    assert _sources(_audit(tmp_path, refs=[REFS[0], load_model(REFS[1])]).run(MODEL)) == {"disk"}


def test_corrupt_or_foreign_entries_are_ignored_with_a_warning(tmp_path, caplog):
    reference = _audit(tmp_path).run(MODEL)
    entries = sorted((tmp_path / "reference-side").rglob("*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:-50])  # torn
    with np.load(entries[1]) as data:  # intact file, altered numbers: the stored sha256 no longer matches
        arrays = {name: data[name] for name in data.files}
    name = "predictions" if "predictions" in arrays else "correct"
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] += 1
    np.savez(entries[1], **arrays)
    entries[2].write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="unlearn_audit.reference_cache"):
        again = _audit(tmp_path).run(MODEL)
    assert _sources(again) == {"computed"}
    assert sum("ignoring" in r.getMessage() for r in caplog.records) == 3
    assert _without_cache_record(again.to_json()) == _without_cache_record(reference.to_json())
    assert _sources(_audit(tmp_path).run(MODEL)) == {"disk"}  # rewritten


def test_one_reference_keeps_the_swap_null_per_model(tmp_path):
    """With one reference the adversarial null crafts on the reference and evaluates the audited model, so only
    the Gaussian probe's reference side is stored; the rest is recomputed and the JSON is still the same."""
    cold = _audit(tmp_path, refs=REFS[:1]).run(MODEL)
    warm = _audit(tmp_path, refs=REFS[:1]).run(MODEL)
    assert _sources(warm) == {"disk"}
    assert _without_cache_record(cold.to_json()) == _without_cache_record(warm.to_json())


def test_run_many_and_later_runs_share_one_computation(tmp_path):
    audit = _audit(False)
    many = audit.run_many({"gd": MODEL, "ga": FMNIST / "ga.safetensors"})
    assert _sources(many["gd"]) == {"computed"}
    assert _sources(audit.run(FMNIST / "original.safetensors")) == {"memory"}


def test_cache_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "unlearn-audit"
    assert ReferenceCache.from_setting(None).directory == tmp_path / "xdg" / "unlearn-audit"
    assert ReferenceCache.from_setting(False).directory is None
    store = ReferenceCache.from_setting(tmp_path / "c")
    assert ReferenceCache.from_setting(store) is store
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="not a folder"):
        ReferenceCache.from_setting(tmp_path / "file")


def test_cli_cache_flags(cli, tmp_path):
    args = [
        "check", MODEL, "--forget", FMNIST / "forget.npz", "--reference", REFS[0], "--reference", REFS[1],
        "--probes", "gaussian", "--taus", "0,8/255", "--draws", "2", "--bootstrap", "200", "--panel", "none",
    ]  # fmt: skip
    first = cli(*args, "--cache-dir", tmp_path / "c", "--json", tmp_path / "a.json")
    second = cli(*args, "--cache-dir", tmp_path / "c", "--json", tmp_path / "b.json")
    off = cli(*args, "--no-cache", "--json", tmp_path / "n.json")
    assert first.code == second.code == off.code
    docs = [json.loads((tmp_path / f"{n}.json").read_text()) for n in "abn"]
    assert [d["provenance"]["reference_cache"]["hit"] for d in docs] == [False, True, False]
    assert docs[2]["provenance"]["reference_cache"]["dir"] is None
    bad = cli(*args, "--no-cache", "--cache-dir", tmp_path / "c")
    assert bad.code == 2 and "contradict" in bad.err


def test_a_remediation_trial_is_a_sequential_audit():
    """A remediation trial's audit looks at the forget set in stages (unlearn_audit/sequential.py): it keeps the
    full audit's verdict, and a clear model stops at an early look."""
    audit = _audit(False, forget=_forget(200))
    full = audit.run(ORIGINAL)
    trial = audit.run(ORIGINAL, stop_at_residual=True)
    assert full.verdict.kind == trial.verdict.kind == "residual_knowledge"
    assert full.sequential is None and trial.sequential is not None
    assert set(trial.probes) == {"gaussian", "fgsm", "pgd"}  # every probe runs on the samples seen
    assert all(look["level"] > full.probes["gaussian"].pooled.level for look in trial.sequential["looks"])
    ga = audit.run(FMNIST / "ga.safetensors", stop_at_residual=True)  # far below the band: decided early
    assert ga.verdict.kind == "over_unlearning" and ga.sequential["samples_used"] < 200
    assert ga.sequential["evaluations_used"] < ga.sequential["evaluations_full"]
    retrain = FMNIST / "retrain-4.safetensors"  # an honest retrain: nothing above the band, never residual
    honest = audit.run(retrain, stop_at_residual=True)
    assert honest.verdict.kind != "residual_knowledge" and "stopped_early" not in honest.provenance


def test_a_sequential_audit_stops_when_every_probe_is_decided_or_one_finds_residual_knowledge():
    from unlearn_audit.sequential import may_stop

    assert may_stop(["above", None], residual=True)  # residual knowledge on one probe decides the verdict
    assert may_stop(["below", "below"], residual=False)  # every probe decided
    assert not may_stop(["below", None], residual=False)  # over-unlearning on one probe does not decide it
    assert not may_stop([None, None], residual=False)


@pytest.mark.training
def test_search_trials_reuse_the_reference_side_and_report_a_complete_audit():
    audit = _audit(False, forget=_forget(200), probes=("gaussian", "fgsm"), draws=3, taus=(0.0, 8 / 255))
    result = audit.remediate(
        ORIGINAL,
        retain=FMNIST / "retain_subset.npz",
        search=True,
        max_steps=3,
        lambda_neighbour=1e-6,  # far too weak: the first trials still know the forget set
        max_trials=2,
    )
    trials = result.trials
    assert result.before.provenance["reference_cache"]["hit"] is False
    assert trials[0]["verdict"] == "residual_knowledge" and trials[0]["probes_skipped"] == []
    assert trials[0]["samples_used"] <= 200  # a sequential trial (looks; it may need every sample)
    assert set(result.after.probes) == {"gaussian", "fgsm"}  # the reported audit ran every probe
    assert "stopped_early" not in result.after.provenance and result.after.sequential is None
    assert result.after.provenance["reference_cache"]["hit"] is True  # from memory: computed once, by `before`
