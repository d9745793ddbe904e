"""RobustBench-style cards: every bundled model is re-measured against its card, and the builder reproduces the set."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import DIGITS, FMNIST, REFERENCE_MODELS
from unlearn_audit import load_model, load_samples
from unlearn_audit.inference import predict
from unlearn_audit.io.hashing import sha256_file


def _builder():
    spec = importlib.util.spec_from_file_location("reference_build", REFERENCE_MODELS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_build"] = module
    spec.loader.exec_module(module)
    return module


DATA_FOR_SPLIT = {"forget": "forget", "test": "test", "retain_subset": "retain_subset", "retain": "retain"}


@pytest.mark.parametrize("root", [FMNIST, DIGITS], ids=lambda p: p.name)
def test_every_card_is_remeasured(root: Path):
    manifest = json.loads((root / "manifest.json").read_text())
    for name, entry in manifest["data"].items():
        assert sha256_file(root / name) == entry["sha256"], name
    cache: dict[str, object] = {}
    for name, card in manifest["models"].items():
        path = root / card["file"]
        assert sha256_file(path) == card["sha256"], name
        model = load_model(path, device="cpu")
        assert model.meta.arch == manifest["arch"] and model.meta.extra["method"] == card["method"]
        for split, claimed in card["accuracy"].items():
            source = root / (f"{split}.npz" if (root / f"{split}.npz").exists() else f"{split}.csv")
            samples = cache.setdefault(split, load_samples(source))
            correct = int((predict(model, samples.x) == samples.y).sum())  # type: ignore[attr-defined]
            assert (correct, len(samples)) == (claimed["correct"], claimed["n"]), (name, split)  # type: ignore[arg-type]


def test_bundle_is_small():
    total = sum(p.stat().st_size for p in REFERENCE_MODELS.rglob("*") if p.is_file())
    assert total < 6 * 1024**2, f"reference_models/ is {total / 1024**2:.1f} MiB"


def test_expected_cast_of_models():
    manifest = json.loads((FMNIST / "manifest.json").read_text())
    models = manifest["models"]
    assert {"original", "gd", "ga", "neggradplus"} <= set(models)
    assert sum(card["method"] == "retrain" for card in models.values()) >= 3
    retrain_forget = [c["accuracy"]["forget"]["acc"] for c in models.values() if c["method"] == "retrain"]
    assert models["original"]["accuracy"]["forget"]["acc"] > max(retrain_forget) + 0.1
    assert models["ga"]["accuracy"]["forget"]["acc"] < min(retrain_forget) - 0.2


def test_digits_builder_reproduces_the_bundle(tmp_path):
    build = _builder()
    built = build.build_set(build.DIGITS, tmp_path / "digits-tiny", log=lambda *_: None)
    bundled = json.loads((DIGITS / "manifest.json").read_text())
    assert build.compare(built, bundled) == []


@pytest.mark.slow
def test_fmnist_builder_reproduces_the_bundle(tmp_path):
    build = _builder()
    built = build.build_set(build.FMNIST, tmp_path / "fmnist-small", log=lambda *_: None)
    bundled = json.loads((FMNIST / "manifest.json").read_text())
    assert build.compare(built, bundled) == []
