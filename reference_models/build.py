"""Build the bundled reference models, reproducibly.

    python reference_models/build.py                  # rebuild every set in place (~2.5 min on 2 CPU cores)
    python reference_models/build.py --check          # rebuild into a temp dir and compare with the bundle
    python reference_models/build.py --set digits-tiny --out /tmp/zoo

Two sets:

* ``fmnist-small``: Fashion-MNIST (Debian's ``dataset-fashion-mnist``), 1,000 training images per class, forget
  = 50 % of class 0 (500 images), a small CNN (``small-cnn``, ~52k parameters, BatchNorm). Models: the original,
  four retrains without the forget set (seeds 1-4), and three unlearned variants of the original: GD, GA and
  NegGrad+. Bundled data (``.npz``): the forget set, a 2,000-image retain subset and a 2,000-image test set;
  index CSVs into the full dataset are written beside them.
* ``digits-tiny``: scikit-learn's digits (8x8), forget = 50 % of class 0 of a 1,200-image training split, the same
  CNN family. Trains in seconds; used by the fast unit tests.

Every model gets a card in ``manifest.json`` (file, sha256, method, seed, hyper-parameters, accuracies on the
bundled sets). ``tests/integration/test_reference_models.py`` re-measures every card.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from unlearn_audit.inference import predict  # noqa: E402
from unlearn_audit.io.architectures import build_architecture  # noqa: E402
from unlearn_audit.io.datasets import open_dataset  # noqa: E402
from unlearn_audit.io.hashing import sha256_file  # noqa: E402
from unlearn_audit.io.models import AuditableModel, ModelMeta, load_model, save_model  # noqa: E402
from unlearn_audit.io.samples import Samples, samples_from_tensors, write_index_csv  # noqa: E402
from unlearn_audit.training import TrainConfig, train_classifier  # noqa: E402
from unlearn_audit.unlearning import unlearn  # noqa: E402


@dataclass(frozen=True)
class SetSpec:
    name: str
    dataset_train: str
    dataset_test: str
    per_class_train: int
    per_class_test: int
    per_class_retain_bundle: int
    forget_class: int
    forget_fraction: float
    arch: str
    input_shape: tuple[int, ...]
    train: TrainConfig
    retrain_seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    split_seed: int = 2024
    bundle_data: bool = True


FMNIST = SetSpec(
    name="fmnist-small",
    dataset_train="fashion-mnist:train",
    dataset_test="fashion-mnist:test",
    per_class_train=1000,
    per_class_test=200,
    per_class_retain_bundle=200,
    forget_class=0,
    forget_fraction=0.5,
    arch="small-cnn",
    input_shape=(1, 28, 28),
    train=TrainConfig(epochs=20, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=128, seed=0),
    retrain_seeds=(1, 2, 3, 4),
    variants={
        "gd": {"epochs": 5, "lr": 0.01},
        "ga": {"epochs": 20, "lr": 0.002, "stop_at_forget_acc": 0.5},
        "neggrad+": {"epochs": 5, "lr": 0.01, "beta": 0.01},
    },
)

DIGITS = SetSpec(
    name="digits-tiny",
    dataset_train="digits",
    dataset_test="digits",
    per_class_train=120,
    per_class_test=50,
    per_class_retain_bundle=0,
    forget_class=0,
    forget_fraction=0.5,
    arch="small-cnn",
    input_shape=(1, 8, 8),
    train=TrainConfig(epochs=40, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=64, seed=0),
    retrain_seeds=(1, 2, 3),
    variants={
        "gd": {"epochs": 5, "lr": 0.01, "batch_size": 64},
        "ga": {"epochs": 40, "lr": 0.002, "batch_size": 64, "stop_at_forget_acc": 0.5},
    },
    bundle_data=False,
)

SETS = {s.name: s for s in (FMNIST, DIGITS)}


def split(spec: SetSpec) -> dict[str, np.ndarray]:
    """Indices into the train/test datasets: train pool, forget, retain, test."""
    rng = np.random.default_rng(spec.split_seed)
    train_ds = open_dataset(spec.dataset_train)
    test_ds = open_dataset(spec.dataset_test)
    if spec.dataset_train == spec.dataset_test:  # digits: one pool, split into train and test
        pool_train, pool_test = [], []
        for c in range(train_ds.num_classes):
            idx = rng.permutation(np.flatnonzero(train_ds.labels == c))
            pool_train.append(idx[: spec.per_class_train])
            pool_test.append(idx[spec.per_class_train : spec.per_class_train + spec.per_class_test])
        train_by_class, test = pool_train, np.concatenate(pool_test)
    else:
        train_by_class = [
            rng.permutation(np.flatnonzero(train_ds.labels == c))[: spec.per_class_train]
            for c in range(train_ds.num_classes)
        ]
        test = np.concatenate(
            [
                rng.permutation(np.flatnonzero(test_ds.labels == c))[: spec.per_class_test]
                for c in range(test_ds.num_classes)
            ]
        )
    n_forget = int(round(spec.forget_fraction * len(train_by_class[spec.forget_class])))
    forget = np.sort(train_by_class[spec.forget_class][:n_forget])
    retain_parts = [ix for c, ix in enumerate(train_by_class) if c != spec.forget_class]
    retain_parts.append(train_by_class[spec.forget_class][n_forget:])
    retain = np.sort(np.concatenate(retain_parts))
    bundle = np.sort(
        np.concatenate(
            [
                rng.permutation(retain[train_ds.labels[retain] == c])[: spec.per_class_retain_bundle]
                for c in range(train_ds.num_classes)
            ]
        )
    )
    return {"forget": forget, "retain": retain, "test": np.sort(test), "retain_subset": bundle}


def as_samples(spec_name: str, indices: np.ndarray) -> Samples:
    ds = open_dataset(spec_name)
    return samples_from_tensors(
        ds.take(indices), ds.labels[indices], [f"{spec_name}:{i}" for i in indices], source=spec_name
    )


def accuracy(model: torch.nn.Module, samples: Samples) -> dict[str, Any]:
    correct = int((predict(model, samples.x) == samples.y).sum())
    return {"correct": correct, "n": len(samples), "acc": round(correct / len(samples), 6)}


def build_set(spec: SetSpec, out: Path, log=print) -> dict[str, Any]:
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    idx = split(spec)
    forget = as_samples(spec.dataset_train, idx["forget"])
    retain = as_samples(spec.dataset_train, idx["retain"])
    test = as_samples(spec.dataset_test, idx["test"])
    retain_subset = as_samples(spec.dataset_train, idx["retain_subset"]) if len(idx["retain_subset"]) else None
    train_x = torch.cat([forget.x, retain.x])
    train_y = torch.cat([forget.y, retain.y])

    write_index_csv(out / "forget.csv", idx["forget"], forget.y.tolist(), spec.dataset_train)
    write_index_csv(out / "retain.csv", idx["retain"], retain.y.tolist(), spec.dataset_train)
    write_index_csv(out / "test.csv", idx["test"], test.y.tolist(), spec.dataset_test)
    data_files = {"forget.csv": "forget", "retain.csv": "retain", "test.csv": "test"}
    if spec.bundle_data:
        for name, samples, ix, ds in (
            ("forget.npz", forget, idx["forget"], spec.dataset_train),
            ("retain_subset.npz", retain_subset, idx["retain_subset"], spec.dataset_train),
            ("test.npz", test, idx["test"], spec.dataset_test),
        ):
            assert samples is not None
            pixels = np.round(samples.x.numpy() * 255).astype(np.uint8)
            ids = np.asarray([f"{ds}:{i}" for i in ix])
            np.savez_compressed(out / name, x=pixels, y=samples.y.numpy(), ids=ids)
            data_files[name] = name.split(".")[0]

    meta = ModelMeta(name="original", arch=spec.arch, num_classes=10, input_shape=spec.input_shape)
    common = {"dataset": spec.dataset_train, "forget_class": str(spec.forget_class), "reference_set": spec.name}
    cards: dict[str, dict[str, Any]] = {}

    def record(
        name: str, model: AuditableModel, method: str, seed: int, hparams: dict[str, Any], parent: str | None
    ) -> None:
        path = out / f"{name}.safetensors"
        extra: dict[str, Any] = {**common, "method": method, "seed": str(seed), "hparams": hparams}
        if parent:
            extra["parent_sha256"] = parent
        model.meta = ModelMeta(name=name, arch=spec.arch, num_classes=10, input_shape=spec.input_shape)
        digest = save_model(model, path, **extra)
        card = {
            "file": path.name,
            "sha256": digest,
            "method": method,
            "seed": seed,
            "hparams": hparams,
            "parent_sha256": parent,
            "accuracy": {"forget": accuracy(model, forget), "test": accuracy(model, test)},
        }
        if retain_subset is not None:
            card["accuracy"]["retain_subset"] = accuracy(model, retain_subset)
        else:
            card["accuracy"]["retain"] = accuracy(model, retain)
        cards[name] = card
        log(f"  {name:<10} forget {card['accuracy']['forget']['acc']:.3f}  test {card['accuracy']['test']['acc']:.3f}")

    train_hp = {k: getattr(spec.train, k) for k in ("epochs", "lr", "momentum", "weight_decay", "batch_size")}
    torch.manual_seed(spec.train.seed)
    original = AuditableModel(build_architecture(spec.arch, 10, spec.input_shape), meta)
    train_classifier(original, train_x, train_y, spec.train)
    record("original", original, "train", spec.train.seed, train_hp, None)
    original_sha = cards["original"]["sha256"]
    original = load_model(out / "original.safetensors", device="cpu")

    for seed in spec.retrain_seeds:
        model = unlearn("retrain", original, forget, retain, seed=seed, **train_hp)
        record(f"retrain-{seed}", model, "retrain", seed, train_hp, None)
    for method, hp in spec.variants.items():
        model = unlearn(method, original, forget, retain, seed=0, **hp)
        record(method.replace("+", "plus"), model, method, 0, hp, original_sha)

    manifest = {
        "name": spec.name,
        "description": (
            f"{spec.dataset_train}: {spec.per_class_train} training images per class; forget = "
            f"{int(spec.forget_fraction * 100)} % of class {spec.forget_class}; arch {spec.arch}"
        ),
        "arch": spec.arch,
        "input_shape": list(spec.input_shape),
        "num_classes": 10,
        "forget_class": spec.forget_class,
        "split_seed": spec.split_seed,
        "sizes": {k: int(len(v)) for k, v in idx.items()},
        "data": {name: {"role": role, "sha256": sha256_file(out / name)} for name, role in sorted(data_files.items())},
        "models": cards,
        "build": {"torch": torch.__version__, "seconds": round(time.time() - started, 1)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


CHAOTIC = frozenset({"ga"})
"""Methods whose rebuilt accuracies another machine does not reproduce: gradient ascent amplifies float rounding,
and ``stop_at_forget_acc`` ends it on whichever step first crosses the threshold, so one step more or less moves
forget accuracy by tens of points (rebuilt on other kernels and thread counts: digits-tiny 0.217-0.433 against
the bundle's 0.233, fmnist-small 0.218-0.466 against 0.396, and 0.190 on an Intel Xeon). Their cards are held to
the roles below instead."""

TOLERANCE = {"forget": 0.04, "test": 0.03, "retain": 0.03, "retain_subset": 0.03}
"""Largest accuracy change a rebuild on other CPU kernels may show, per split, for models trained by descent.
Measured (docs/testing.md) over rebuilds under ATEN_CPU_CAPABILITY=default and avx2 with 1 and 2 threads: digits
models by descent did not move at all; fmnist ones moved by at most 0.016 (forget, 8 of 500 images), 0.0065
(test) and 0.007 (retain). A rebuild that rounds differently is, in effect, another seed: the fmnist retrains,
which differ only in their seed, span 0.018 (forget), 0.018 (test) and 0.012 (retain) over those rebuilds.
The tolerances are at least twice the first and 1.6 times the second."""

KEPT_MARGIN = {"fmnist-small": 0.1}
"""Sets whose original and GD recognise the forget set clearly better than every retrain (fmnist-small: 0.974
and 0.948 against at most 0.808). Digits generalise: a retrain recognises the held-out half of class 0 as well as
the original does, so digits-tiny has no such role."""
GA_MARGIN = 0.2
"""GA's forget accuracy lies at least this far below every retrain's (bundles: 0.40 vs 0.79, 0.23 vs 0.98)."""
GA_MIN_TEST = 0.5
"""GA stops at its threshold, so it still classifies (test accuracy 0.81-0.93 measured); a diverged GA reads ~0.1."""


def _acc(card: dict[str, Any], split_name: str) -> float:
    return float(card["accuracy"][split_name]["acc"])


def roles(manifest: dict[str, Any]) -> list[str]:
    """What each model of a set was built to show, in words that hold on any machine: GA forgot the forget set
    (below its stop threshold, far below every retrain, yet still a classifier); where the set shows it, the
    original and GD still recognise the forget set far better than every retrain."""
    models = manifest["models"]
    retrain_forget = [_acc(c, "forget") for c in models.values() if c["method"] == "retrain"]
    if not retrain_forget:
        return ["no retrained model in the set"]
    problems = []
    ga = models.get("ga")
    if ga is not None:
        forget, stop = _acc(ga, "forget"), ga["hparams"].get("stop_at_forget_acc")
        if stop is not None and forget > stop:
            problems.append(f"ga: forget accuracy {forget:.3f} above its stop threshold {stop}: it never got there")
        if forget > min(retrain_forget) - GA_MARGIN:
            problems.append(
                f"ga: forget accuracy {forget:.3f} not {GA_MARGIN} below every retrain's (lowest {min(retrain_forget):.3f})"
            )
        if _acc(ga, "test") < GA_MIN_TEST:
            problems.append(f"ga: test accuracy {_acc(ga, 'test'):.3f} below {GA_MIN_TEST}: gradient ascent diverged")
    margin = KEPT_MARGIN.get(manifest["name"])
    for name in ("original", "gd") if margin is not None else ():
        if name in models and _acc(models[name], "forget") <= max(retrain_forget) + margin:
            problems.append(
                f"{name}: forget accuracy {_acc(models[name], 'forget'):.3f} not {margin} above every retrain's "
                f"(highest {max(retrain_forget):.3f})"
            )
    return problems


def compare(built: dict[str, Any], bundled: dict[str, Any], tolerance: dict[str, float] | None = None) -> list[str]:
    """Differences between a rebuild and the bundle that another machine cannot explain.

    Deterministic parts match exactly: the data files (a numpy-seeded split) and each card's method, seed,
    hyper-parameters and lineage. Trained weights match bit for bit only on the CPU kernels and thread count
    that built the bundle; elsewhere rounding makes each model a slightly different one. A model trained by
    descent then keeps its accuracies within ``tolerance`` (default :data:`TOLERANCE`); a :data:`CHAOTIC` one,
    and the rebuilt set as a whole, are held to :func:`roles`.
    """
    tolerance = TOLERANCE if tolerance is None else tolerance
    problems = []
    # the same kernels rebuild the original to the bit; then training is deterministic and so is every model
    rebuilt_original = built["models"].get("original", {}).get("sha256")
    same_kernels = rebuilt_original == bundled["models"]["original"]["sha256"]
    for name, card in bundled["models"].items():
        other = built["models"].get(name)
        if other is None:
            problems.append(f"{name}: missing from the rebuild")
            continue
        for key in ("method", "seed", "hparams"):
            if other[key] != card[key]:
                problems.append(f"{name}: {key} {other[key]!r} vs bundled {card[key]!r}")
        if card["parent_sha256"] is not None and other["parent_sha256"] != rebuilt_original:
            problems.append(f"{name}: not derived from the rebuilt original")
        if other["sha256"] == card["sha256"]:
            continue
        if same_kernels:
            problems.append(f"{name}: not bit-identical, though the original is (training is not deterministic)")
        if card["method"] in CHAOTIC:
            continue
        for split_name, acc in card["accuracy"].items():
            mine = other["accuracy"][split_name]
            if mine["n"] != acc["n"] or abs(mine["acc"] - acc["acc"]) > tolerance[split_name]:
                problems.append(
                    f"{name}: {split_name} accuracy {mine['acc']:.3f} vs bundled {acc['acc']:.3f} "
                    f"(n {mine['n']} vs {acc['n']}; tolerance {tolerance[split_name]})"
                )
    problems += [f"rebuild: {p}" for p in roles(built)]
    for name, entry in bundled["data"].items():
        if built["data"].get(name, {}).get("sha256") != entry["sha256"]:
            problems.append(f"{name}: data file differs from the bundle")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", choices=sorted(SETS), help="which set(s) to build (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: reference_models/)")
    parser.add_argument("--check", action="store_true", help="rebuild into a temp folder and compare with the bundle")
    args = parser.parse_args(argv)
    names = args.set or sorted(SETS)
    status = 0
    for name in names:
        print(f"[{name}]")
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                built = build_set(SETS[name], Path(tmp) / name)
            bundled = json.loads((HERE / name / "manifest.json").read_text())
            problems = compare(built, bundled)
            identical = all(
                built["models"][m]["sha256"] == c["sha256"]
                for m, c in bundled["models"].items()
                if m in built["models"]
            )
            print("  bit-identical" if identical else "  not bit-identical; accuracies within tolerance, roles checked")
            for p in problems:
                print("  MISMATCH", p)
            status |= bool(problems)
        else:
            manifest = build_set(SETS[name], args.out / name)
            print(f"  built in {manifest['build']['seconds']} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
