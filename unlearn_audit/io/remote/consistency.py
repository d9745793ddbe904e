"""Consistency re-checks: a seeded reservoir of inputs already answered, re-sent with new requests and compared.

A share (``recheck_rate``) of each call's new rows is drawn from a reservoir sample (algorithm R, seeded from
the audit seed on its own stream) of the inputs answered so far, re-sent with the new rows, and compared
with the stored first answer: scores within ``atol + rtol·max|score|`` (labels for label-only endpoints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RECHECK_STREAM = 0x4F4950  # spawn key of the recheck sampler, independent of the jitter stream


class RecheckPool:
    """The reservoir of answered inputs (key, wire row) that re-checks draw from."""

    def __init__(self, seed: int, rate: float, size: int) -> None:
        self.rate = rate
        self.size = size
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(RECHECK_STREAM,)))
        self._reservoir: list[tuple[bytes, np.ndarray]] = []
        self._seen = 0

    def pick(self, missing: int) -> list[tuple[bytes, np.ndarray]]:
        """The inputs to re-send with ``missing`` new rows: ``ceil(rate · missing)`` of the pool, in pool order."""
        if self.rate <= 0 or not self._reservoir:
            return []
        count = min(len(self._reservoir), math.ceil(self.rate * missing))
        chosen = self._rng.choice(len(self._reservoir), size=count, replace=False)
        return [self._reservoir[int(i)] for i in sorted(chosen.tolist())]

    def remember(self, unique: list[bytes], wire: np.ndarray, first: dict[bytes, int]) -> None:
        """Offer the distinct inputs of one call (``wire[first[key]]``) to the reservoir."""
        if self.rate <= 0 or not unique:
            return
        seen = self._seen + np.arange(1, len(unique) + 1)
        slots = self._rng.integers(0, seen)
        for key, slot in zip(unique, slots.tolist(), strict=True):
            if len(self._reservoir) < self.size:
                self._reservoir.append((key, wire[first[key]].copy()))
            elif slot < self.size:
                self._reservoir[slot] = (key, wire[first[key]].copy())
        self._seen += len(unique)


@dataclass(frozen=True)
class Comparison:
    """How the re-sent answers compare with the first ones."""

    compared: int
    differing: int
    labels_changed: int
    largest_gap: float  # max |Δscore| (0 for label-only endpoints)


def compare_answers(
    keys: list[bytes],
    before: dict[bytes, np.ndarray],
    again: dict[bytes, np.ndarray],
    *,
    labels_only: bool,
    rtol: float,
    atol: float,
) -> Comparison:
    """Compare the re-sent answer of each of ``keys`` (``again``) with its first answer (``before``; keys
    without one are skipped)."""
    differing, labels_changed, largest = 0, 0, 0.0
    for key in keys:
        old, new = before.get(key), again[key]
        if old is None:
            continue
        if labels_only:
            changed = bool(old != new)
            labels_changed += changed
        else:
            old64, new64 = old.astype(np.float64), new.astype(np.float64)
            gap = float(np.abs(old64 - new64).max())
            largest = max(largest, gap)
            changed = gap > atol + rtol * float(np.abs(old64).max())
            labels_changed += bool(changed and old.argmax() != new.argmax())
        differing += changed
    return Comparison(len(keys), differing, labels_changed, largest)
