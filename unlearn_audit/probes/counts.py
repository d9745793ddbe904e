"""``ProbeCounts``: the single currency between probes and statistics.

For every probe the engine produces, per forget sample and τ,

* ``correct[a, m, i, t]``: how many of the ``draws`` perturbed copies of sample i at τ_t, crafted on model
  ``a``, model ``m`` classifies correctly;
* ``disagree[a, m, i, t]``: on how many of those draws model ``m`` and the crafting model ``a`` disagree.

Models ``0..S-1`` are the audited models ("subjects", usually one), models ``S..S+K-1`` the references.
``a`` runs over the *anchors* ``crafted_on``: for adversarial probes, the models the inputs are crafted on
(every subject and, for the null band, every reference); for random probes the draws are shared by all
models and the anchors are the subjects (``disagree`` is counted against each of them, ``correct`` is the
same in every block).

Counts are small, exact, mergeable across shards (sum) and resumable. This module is numpy only: whatever
consumes counts (analysis, distributed merging, results) needs no torch from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass
class ProbeCounts:
    """Sufficient statistics of one probe over a τ grid (see the module docstring)."""

    probe: str
    probe_config: dict[str, Any]
    taus: np.ndarray
    draws: int
    sample_ids: tuple[str, ...]
    labels: np.ndarray
    models: tuple[str, ...]
    crafted_on: tuple[int, ...]
    correct: np.ndarray  # int64 [A, M, N, T]
    disagree: np.ndarray  # int64 [A, M, N, T]
    subjects: int = 1
    precision: str = "fp32"
    meta: dict[str, Any] = field(default_factory=dict)
    evaluated: np.ndarray | None = None  # bool [A, M]: which models saw each block's rows (None: all)

    def __post_init__(self) -> None:
        if self.evaluated is None:
            self.evaluated = np.ones(self.correct.shape[:2], dtype=bool)

    @property
    def adversarial(self) -> bool:
        """Rows crafted per anchor (white-box or query-based). Random and transfer probes share one set of rows."""
        return bool(self.probe_config.get("adversarial", False)) and self.access in ("white-box", "query-based")

    @property
    def access(self) -> str:
        """``white-box``, ``transfer``, ``query-based`` or ``predictions-only`` (see probes.engine.Crafting)."""
        default = "white-box" if self.probe_config.get("adversarial", False) else "predictions-only"
        return str(self.probe_config.get("access", default))

    @property
    def evaluated_mask(self) -> np.ndarray:
        return self.evaluated if self.evaluated is not None else np.ones(self.correct.shape[:2], dtype=bool)

    @property
    def references(self) -> tuple[int, ...]:
        return tuple(range(self.subjects, len(self.models)))

    def block(self, model_index: int) -> int:
        """Index along ``a`` of the rows crafted on (adversarial) or anchored at (random) ``model_index``.

        For random probes every block holds the same ``correct`` counts, so a reference uses block 0.
        """
        if model_index in self.crafted_on:
            return self.crafted_on.index(model_index)
        if not self.adversarial:
            return 0
        raise KeyError(f"no rows were crafted on model {self.models[model_index]!r}")

    def merge(self, other: ProbeCounts) -> ProbeCounts:
        """Sum of two partial runs over disjoint samples (shards) with identical settings."""
        same = (self.probe, self.draws, self.models, self.crafted_on, self.sample_ids)
        if same != (other.probe, other.draws, other.models, other.crafted_on, other.sample_ids) or not np.array_equal(
            self.taus, other.taus
        ):
            raise ConfigError("cannot merge counts from runs with different probes, τ grids, draws, models or samples")
        return replace(
            self,
            correct=self.correct + other.correct,
            disagree=self.disagree + other.disagree,
            evaluated=np.logical_and(self.evaluated_mask, other.evaluated_mask),
        )

    def restricted(self, keep: list[int]) -> ProbeCounts:
        """The counts as if only models ``keep`` (one subject first, then the references) had been run."""
        anchors = [self.crafted_on.index(m) for m in keep if m in self.crafted_on]
        crafted = tuple(keep.index(m) for m in keep if m in self.crafted_on)
        if not self.adversarial:
            anchors = [self.crafted_on.index(keep[0])]
            crafted = (0,)
        return replace(
            self,
            models=tuple(self.models[m] for m in keep),
            crafted_on=crafted,
            correct=self.correct[anchors][:, keep],
            disagree=self.disagree[anchors][:, keep],
            evaluated=None if self.evaluated is None else self.evaluated[anchors][:, keep],
            subjects=1,
        )

    def take(self, index: np.ndarray | slice) -> ProbeCounts:
        """The counts of samples ``index`` only (positions along ``N``, in that order): e.g. what a sequential
        audit has seen at a look (``slice(0, n)``)."""
        ids = np.asarray(self.sample_ids, dtype=object)[index]
        return replace(
            self,
            sample_ids=tuple(ids.tolist()),
            labels=self.labels[index],
            correct=self.correct[:, :, index],
            disagree=self.disagree[:, :, index],
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"correct": self.correct, "disagree": self.disagree, "taus": self.taus, "labels": self.labels}
