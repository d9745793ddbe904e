"""Sharded, resumable and distributed probe runs.

The forget set is cut into shards of ``shard_size`` samples. Each shard's counts are computed by
``Engine.run(probe, sample_range=shard)``; because every sample's randomness is keyed by its id, a shard's
counts do not depend on which process computes it or when. That gives, with one mechanism:

* **resume**: with a work directory, every finished shard is written atomically to
  ``<work_dir>/<fingerprint>/<probe>/<lo>-<hi>.npz``; a rerun of the same command loads finished shards and
  computes only the rest. The fingerprint hashes everything that determines the counts (model hashes,
  sample content, probe settings, τ grid, draws, seed, precision), so a changed input never reuses stale work;
* **distribution** (``torchrun --nproc-per-node N -m unlearn_audit check …``): rank r computes shards
  r, r + N, r + 2N, … and the count arrays are summed with ``all_reduce`` (gloo on CPU, NCCL on GPUs), so every
  rank holds the same counts as a single-process run; rank 0 writes the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .probes import Probe, ProbeCounts, probe_label
from .probes.reference_side import ReferenceSide
from .progress import NULL_PROGRESS, Progress, cache_event, phase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistContext | None:
    """The torch.distributed context: reuse an initialised group, or start one when torchrun set WORLD_SIZE > 1."""
    if not torch.distributed.is_available():
        return None
    if not torch.distributed.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("UNLEARN_AUDIT_BACKEND") != "gloo" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return DistContext(
        torch.distributed.get_rank(), torch.distributed.get_world_size(), torch.distributed.get_backend()
    )


def local_device_hint() -> str | None:
    """``cuda:LOCAL_RANK`` under torchrun on a GPU node (one GPU per process)."""
    if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return None


def fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def shard_key(
    role: str, models: list[str | None], samples: Any, probe: Probe, config: Any, engine: Any, *, subjects: int
) -> str:
    """The fingerprint of one probe's counts on one sample set: every input that determines them (``models``: the
    identities of the models that run it, e.g. their sha256, and the surrogate of a transfer probe)."""
    label = probe_label(probe)
    return fingerprint(
        {
            "role": role,
            "models": list(models),
            "samples": samples.content_sha256,
            "ids": samples.ids,
            "probe": probe.config(),
            "label": label,
            "taus": list(config.taus),
            "draws": config.draws_for(label),
            "seed": config.seed,
            "precision": engine.precision_for(probe),
            "frozen_scoring": sorted(engine.scorers),  # models scored by a frozen graph
            "craft": config.craft_on_references,
            "subjects": subjects,
            "engine": config.engine,
            "device": engine.device.type,
        }
    )


def _shard_path(work_dir: Path, key: str, label: str, lo: int, hi: int) -> Path:
    return work_dir / key / label / f"{lo:09d}-{hi:09d}.npz"


def _save_shard(path: Path, counts: ProbeCounts, lo: int, hi: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "probe": counts.probe,
        "probe_config": counts.probe_config,
        "models": list(counts.models),
        "crafted_on": list(counts.crafted_on),
        "subjects": counts.subjects,
        "precision": counts.precision,
        "draws": counts.draws,
    }
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        correct=counts.correct[:, :, lo:hi],
        disagree=counts.disagree[:, :, lo:hi],
        evaluated=counts.evaluated_mask,
        meta=np.asarray(json.dumps(meta, sort_keys=True)),
    )
    os.replace(tmp, path)


def _load_shard(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {
                "correct": data["correct"],
                "disagree": data["disagree"],
                "evaluated": data["evaluated"],
                "meta": json.loads(str(data["meta"])),
            }
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:  # a torn or foreign file: recompute
        log.warning("%s: ignoring unreadable checkpoint (%s)", path, exc)
        return None


def run_probe(
    engine: Any,
    probe: Probe,
    label: str,
    draws: int,
    *,
    shard_size: int,
    work_dir: Path | None,
    key: str,
    dist: DistContext | None,
    progress: Progress = NULL_PROGRESS,
    reference_side: ReferenceSide | None = None,
    sample_range: tuple[int, int] | None = None,
) -> ProbeCounts:
    """Counts for ``probe`` over the whole set (or the half-open ``sample_range``, zeros elsewhere), computed
    shard by shard (see the module docstring); with ``reference_side`` the references' share is taken from it
    instead of being computed again."""
    if shard_size < 1:
        raise ConfigError(f"--shard-size {shard_size}: must be positive")
    n = len(engine.samples)
    first, last = sample_range or (0, n)
    # shards keep their global boundaries, so a range's shards are the same files a whole run writes
    shards = [(max(lo, first), min(n, lo + shard_size, last)) for lo in range(0, n, shard_size)]
    shards = [(lo, hi) for lo, hi in shards if lo < hi]
    rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
    mine = [s for i, s in enumerate(shards) if i % world == rank]
    template: ProbeCounts | None = None
    pieces: list[tuple[int, int, dict[str, Any]]] = []
    with phase(progress, f"{label}", sum(hi - lo for lo, hi in mine), logger=log) as task:
        for lo, hi in mine:
            path = _shard_path(work_dir, key, label, lo, hi) if work_dir is not None else None
            loaded = _load_shard(path) if path is not None and path.exists() else None
            if path is not None:
                cache_event(log, "work directory", loaded is not None, f"{label} counts, samples {lo}-{hi}")
            if loaded is None:
                counts = engine.run(probe, sample_range=(lo, hi), draws=draws, reference_side=reference_side, task=task)
                template = template or counts
                if path is not None:
                    _save_shard(path, counts, lo, hi)
                loaded = {
                    "correct": counts.correct[:, :, lo:hi],
                    "disagree": counts.disagree[:, :, lo:hi],
                    "evaluated": counts.evaluated_mask,
                }
            else:
                task.advance(hi - lo)  # a checkpointed shard: done at once
            pieces.append((lo, hi, loaded))
    if template is None:  # everything came from checkpoints (or this rank had no shard): shapes from a tiny run
        template = engine.run(probe, sample_range=(0, 0), draws=draws, reference_side=reference_side)
    correct = np.zeros_like(template.correct)
    disagree = np.zeros_like(template.disagree)
    evaluated = template.evaluated_mask.copy()
    for lo, hi, piece in pieces:
        correct[:, :, lo:hi] = piece["correct"]
        disagree[:, :, lo:hi] = piece["disagree"]
        evaluated &= piece["evaluated"]
    if dist is not None and world > 1:
        correct, disagree = _all_reduce(correct, disagree, engine.device, dist)
    return replace(template, correct=correct, disagree=disagree, evaluated=evaluated)


def _all_reduce(correct: np.ndarray, disagree: np.ndarray, device: torch.device, dist: DistContext):  # noqa: ANN202
    where = device if dist.backend == "nccl" else torch.device("cpu")
    tensor = torch.from_numpy(np.concatenate([correct.ravel(), disagree.ravel()])).to(where)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    flat = tensor.cpu().numpy()
    return flat[: correct.size].reshape(correct.shape), flat[correct.size :].reshape(disagree.shape)
