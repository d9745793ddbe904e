"""Fingerprints of every training loop's output, to show a refactor of the loops changed no bit.

    python benchmarks/training_hashes.py                      # every method on digits + the builder's digits set
    python benchmarks/training_hashes.py --builder-set none   # methods only (~1 min on one core)
    python benchmarks/training_hashes.py --out before.txt     # also write the lines to a file; diff two runs

Each line is ``<name> <sha256>``: the sha256 of the output state dict (parameters and buffers, key order) of one
unlearning method run on the bundled digits-tiny original, forget and retain sets, with small settings that still
reach every code path (GA's early stop, NegGrad+'s forget-batch cycling, every RURK neighbour generator, both ReA
phases, constant and cosine schedules, gradient clipping on and off), then the re-learn and reminiscence
fine-tunes, then RURK under torch.distributed (two gloo processes; ``--no-ddp`` skips it), then the sha256 of every file the reference-model builder writes for a set (``--builder-set``).

The numbers are only comparable on one machine, one kernel set (``ATEN_CPU_CAPABILITY``) and one thread count
(``--threads``): run it before and after a change under the same conditions and diff the two outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unlearn_audit import load_model, load_samples  # noqa: E402
from unlearn_audit.io.hashing import sha256_state_dict  # noqa: E402
from unlearn_audit.unlearning import unlearn  # noqa: E402

DIGITS = ROOT / "reference_models" / "digits-tiny"

# name -> (method, hyper-parameters, seed)
RUNS: dict[str, tuple[str, dict[str, Any], int]] = {
    "retrain": ("retrain", {"epochs": 3, "lr": 0.05, "batch_size": 64}, 1),
    "gd": ("gd", {"epochs": 2}, 0),
    "gd-constant-bs50": ("gd", {"epochs": 2, "batch_size": 50, "weight_decay": 0.0}, 3),
    "ngd": ("ngd", {"epochs": 2}, 0),
    "ga": ("ga", {"epochs": 2, "lr": 0.001, "batch_size": 16}, 0),
    "ga-stop": ("ga", {"epochs": 40, "lr": 0.002, "batch_size": 16, "stop_at_forget_acc": 0.5}, 0),
    "neggrad+": ("neggrad+", {"epochs": 2, "beta": 0.01}, 0),
    "neggrad+-bs16": ("neggrad+", {"epochs": 1, "beta": 0.05, "batch_size": 16}, 2),
    "eu-k": ("eu-k", {"epochs": 2, "k": 2}, 0),
    "cf-k": ("cf-k", {"epochs": 2}, 0),
    "scrub": ("scrub", {"epochs": 3, "max_steps_epochs": 2, "batch_size": 32}, 0),
    "ssd": ("ssd", {}, 0),
    "fisher": ("fisher", {}, 0),
    "cr": ("cr", {}, 0),
    "ntk": ("ntk", {}, 0),
    "rurk-gaussian": ("rurk", {"max_steps": 12, "neighbour_draws": 2}, 0),
    "rurk-fgsm": ("rurk", {"neighbours": "targeted-fgsm", "max_steps": 6, "batch_size": 32}, 1),
    "rurk-pgd": ("rurk", {"neighbours": "targeted-pgd", "max_steps": 4, "pgd_steps": 3}, 2),
    "rurk-vulnerable": ("rurk", {"neighbours": "vulnerable", "max_steps": 6, "neighbour_draws": 3}, 3),
    "rurk-constant-noclip": ("rurk", {"max_steps": 40, "schedule": "constant", "grad_clip": 0.0, "batch_size": 64}, 4),
    "rea": ("rea", {"erase_epochs": 2, "replay_epochs": 1, "batch_size": 32}, 0),
    "rea-noclip-nol1": ("rea", {"erase_epochs": 1, "replay_epochs": 2, "grad_clip": 0.0, "l1": 0.0}, 5),
}


def _digest_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def method_hashes(emit: Callable[[str, str], None]) -> None:
    model = load_model(DIGITS / "original.safetensors", device="cpu")
    forget = load_samples(DIGITS / "forget.csv")
    retain = load_samples(DIGITS / "retain.csv")
    for name, (method, hparams, seed) in RUNS.items():
        emit(name, sha256_state_dict(unlearn(method, model, forget, retain, seed=seed, **hparams)))

    from unlearn_audit.metrics.relearn import RelearnSettings, forget_loss, relearn_epochs
    from unlearn_audit.metrics.reminiscence import SamplewiseSettings, classwise_steps, finetune_on_retain

    target = 0.5 * forget_loss(model, forget.x, forget.y)
    outcome = relearn_epochs(model, forget.x, forget.y, target, settings=RelearnSettings(lr=1e-3, cap=3), seed=2)
    emit("relearn-losses", _digest_json([outcome.epochs, outcome.censored, outcome.losses]))
    tuned = finetune_on_retain(
        model, retain.x, retain.y, seed=1, settings=SamplewiseSettings(schedule=((1, 0.01), (1, 0.005)))
    )
    emit("reminiscence-finetune", sha256_state_dict(tuned))
    steps = classwise_steps(
        model, forget.x[:10], forget.y[:10], retain.x, retain.y, seed=3, forgotten_class=0, lrs=(1e-3, 1.2e-2)
    )
    emit("reminiscence-classwise", _digest_json(steps.to_dict()))


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from unlearn_audit.remediation import resolve_settings, run_rurk

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = load_model(DIGITS / "original.safetensors", device="cpu")
        forget = load_samples(DIGITS / "forget.csv")
        retain = load_samples(DIGITS / "retain.csv")
        run_rurk(model, forget, retain, resolve_settings(max_steps=6, batch_size=64, neighbour_draws=2), seed=1)
        Path(out, f"rank{rank}.txt").write_text(sha256_state_dict(model))
    finally:
        dist.destroy_process_group()


def ddp_hashes(emit: Callable[[str, str], None]) -> None:
    """RURK under torch.distributed: two gloo processes on this CPU, each rank's weights."""
    import os
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(2, port, tmp), nprocs=2, join=True)
        for rank in range(2):
            emit(f"rurk-ddp-rank{rank}", Path(tmp, f"rank{rank}.txt").read_text())


def builder_hashes(set_name: str, emit: Callable[[str, str], None]) -> None:
    sys.path.insert(0, str(ROOT / "reference_models"))
    import build  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / set_name
        manifest = build.build_set(build.SETS[set_name], out, log=lambda *_: None)
        for name, card in sorted(manifest["models"].items()):
            emit(f"build:{set_name}:{name}", card["sha256"])
        for name, entry in sorted(manifest["data"].items()):
            emit(f"build:{set_name}:{name}", entry["sha256"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builder-set", default="digits-tiny", help="digits-tiny, fmnist-small or none")
    parser.add_argument("--no-ddp", action="store_true", help="skip the two-process RURK run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (hashes depend on it)")
    parser.add_argument("--out", type=Path, help="also write the lines to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def emit(name: str, digest: str) -> None:
        lines.append(f"{name} {digest}")
        print(lines[-1], flush=True)

    method_hashes(emit)
    if not args.no_ddp:
        ddp_hashes(emit)
    if args.builder_set != "none":
        builder_hashes(args.builder_set, emit)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
