"""``ReferenceSide``: the part of one probe's counts that depends on the references alone.

An audit compares the audited model with K retrained references on the same perturbed inputs, and builds its
null band from the references compared with each other. Everything the references contribute depends only on
(the references, the sample set, the probe and its settings, the τ grid, the draws, the seed and the
precision), never on the audited model, so it can be computed once and reused: by ``Audit.run_many``, by every
``remediate --search`` trial, by the demo and, across processes, through the content-addressed cache
(:mod:`unlearn_audit.reference_cache`). What it holds, per probe:

* **random probes** (``predictions``): every reference's predicted label for every (sample, τ, draw), in
  the draw order of the sample's keyed random stream, ``[K, N, T, draws]``. The engine then evaluates only the
  audited models on the same draws and counts ``correct`` and ``disagree`` (reference against audited model)
  from the stored labels: the counts are the integers a full run would produce.
* **adversarial probes crafted on the references** (``correct``, ``disagree``, ``[K, K, N, T]``), with K ≥ 2:
  the leave-one-out band's rows. Block k holds the inputs crafted on reference k, evaluated by every
  reference (a full run evaluates only the references there, so these are exactly its numbers).
  With one reference the swap null evaluates the *audited* model on inputs crafted on the reference, so
  that block depends on the audited model and is computed on every run (``correct is None``).

The arrays run over the whole sample set in its order (axis ``N``), so a sequential audit can take a subset
of samples with :meth:`ReferenceSide.take`. numpy only, like :mod:`.counts`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ReferenceSide:
    """The references' share of one probe's counts (see the module docstring)."""

    probe: str
    adversarial: bool
    taus: np.ndarray  # float64 [T]
    draws: int
    sample_ids: tuple[str, ...]
    references: int  # K
    predictions: np.ndarray | None = None  # random probes: [K, N, T, draws] predicted labels
    correct: np.ndarray | None = None  # adversarial, K >= 2: int64 [K crafted-on, K evaluated, N, T]
    disagree: np.ndarray | None = None  # same shape: disagreement with the crafting reference

    def __post_init__(self) -> None:
        n, t = len(self.sample_ids), len(self.taus)
        if self.predictions is not None and self.predictions.shape != (self.references, n, t, self.draws):
            raise ValueError(f"predictions shape {self.predictions.shape} != {(self.references, n, t, self.draws)}")
        for name in ("correct", "disagree"):
            value = getattr(self, name)
            if value is not None and value.shape != (self.references, self.references, n, t):
                raise ValueError(f"{name} shape {value.shape} != {(self.references, self.references, n, t)}")

    @property
    def has_blocks(self) -> bool:
        """True when the rows crafted on the references are stored (adversarial probes, K >= 2)."""
        return self.correct is not None and self.disagree is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays by name (what the cache writes and hashes)."""
        out = {"taus": self.taus}
        for name in ("predictions", "correct", "disagree"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def digest(self) -> str:
        """sha256 over the names, dtypes, shapes and bytes of the arrays (the cache's integrity check)."""
        hasher = hashlib.sha256()
        for name, value in sorted(self.arrays().items()):
            array = np.ascontiguousarray(value)
            hasher.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            hasher.update(array.tobytes())
        return hasher.hexdigest()

    def describe(self) -> dict[str, Any]:
        """Plain metadata (no arrays), stored beside the arrays."""
        return {
            "probe": self.probe,
            "adversarial": self.adversarial,
            "draws": self.draws,
            "references": self.references,
            "samples": len(self.sample_ids),
        }

    def filled_from(self, other: ReferenceSide, lo: int, hi: int) -> ReferenceSide:
        """This side with samples ``lo:hi`` taken from ``other`` (same settings, computed for that range)."""
        if (other.probe, other.draws, other.references, other.sample_ids) != (
            self.probe,
            self.draws,
            self.references,
            self.sample_ids,
        ):
            raise ValueError("reference sides for different probes, draws, references or samples cannot be joined")
        out = {}
        for name in ("predictions", "correct", "disagree"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None:
                out[name] = mine if theirs is None else theirs
                continue
            joined = mine.copy()
            axis = 1 if name == "predictions" else 2
            index = [slice(None)] * joined.ndim
            index[axis] = slice(lo, hi)
            joined[tuple(index)] = theirs[tuple(index)]
            out[name] = joined
        return replace(self, **out)

    def take(self, index: np.ndarray) -> ReferenceSide:
        """The same references' share restricted to samples ``index`` (positions along ``N``)."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            sample_ids=tuple(self.sample_ids[i] for i in index.tolist()),
            predictions=None if self.predictions is None else self.predictions[:, index],
            correct=None if self.correct is None else self.correct[:, :, index],
            disagree=None if self.disagree is None else self.disagree[:, :, index],
        )


def label_dtype(num_classes: int) -> np.dtype:
    """The smallest dtype that stores a predicted label (the prediction tables can be large)."""
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.int32)


def offsets_within(weight: torch.Tensor) -> torch.Tensor:
    """0, 1, ..., w-1 for every row of weight w, concatenated (``repeat_interleave``'s companion)."""
    ends = torch.cumsum(weight, 0)
    return torch.arange(int(ends[-1]) if len(ends) else 0, device=weight.device) - torch.repeat_interleave(
        ends - weight, weight
    )


def draw_slots(flat: torch.Tensor, weight: torch.Tensor, seen: torch.Tensor, draws: int) -> torch.Tensor:
    """The number of each row's first draw within its (sample, τ) unit: ``seen[unit]`` (draws of earlier
    batches) plus the weights of the earlier rows of the same unit in this batch. Rows of one unit come in the
    order of the unit's random stream, so a draw's number does not depend on batching or chunking."""
    order = torch.argsort(flat, stable=True)
    units, weights = flat[order], weight[order]
    before = torch.cumsum(weights, 0) - weights
    first = torch.ones_like(units, dtype=torch.bool)
    first[1:] = units[1:] != units[:-1]
    positions = torch.arange(len(units), device=flat.device)
    group_start = torch.cummax(torch.where(first, positions, torch.zeros_like(positions)), 0).values
    slots = torch.empty_like(flat)
    slots[order] = seen[units] + before - before[group_start]
    if len(slots) and int((slots + weight).max()) > draws:
        raise RuntimeError("internal draw accounting error: more rows than draws for a (sample, τ) unit")
    return slots
