"""Per-sample evidence: which forget samples the audited model still recognises, with the false-discovery rate
controlled jointly over every (probe, sample) test.

Input: the per-sample p-values and pooled ``(u, v̄)`` that :func:`unlearn_audit.analysis.analyse_probe` returns;
output: :class:`FlaggedSample` records (the JSON's ``flagged_samples``) and the summary counts of
``sample_evidence``. numpy, and scipy for the Benjamini–Hochberg adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control


@dataclass(frozen=True)
class FlaggedSample:
    """A forget sample the exact test flags. ``u``/``v_bar``: correct draws per τ (mean over the τ range) for the
    audited model and the references' average, on the probe with the smallest p. ``p_adjusted``: exact test,
    BH-adjusted; ``p_calibrated_adjusted``: the test that allows for retraining variation, BH-adjusted."""

    id: str
    label: int
    probes: tuple[str, ...]
    u: float
    v_bar: float
    p_adjusted: float
    p_calibrated_adjusted: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "probes": list(self.probes),
            "u": round(self.u, 4),
            "v_bar": round(self.v_bar, 4),
            "p_adjusted": self.p_adjusted,
            "p_calibrated_adjusted": self.p_calibrated_adjusted,
        }


@dataclass(frozen=True)
class SampleEvidence:
    flagged: list[FlaggedSample]
    calibrated_flagged: int
    min_calibrated_p: float

    def summary(self) -> dict[str, Any]:
        return {
            "flagged": len(self.flagged),
            "calibrated_flagged": self.calibrated_flagged,
            "min_calibrated_p": self.min_calibrated_p,
        }


def flag_samples(
    ids: tuple[str, ...], labels: np.ndarray, per_probe: dict[str, tuple[np.ndarray, np.ndarray]], fdr: float
) -> SampleEvidence:
    """Benjamini–Hochberg jointly over every (probe, sample) exact test; one entry per flagged sample.

    ``per_probe[name] = (p [2, N], uv [2, N])`` as returned by :func:`analyse_probe`.
    """
    names = list(per_probe)
    if not names:
        return SampleEvidence([], 0, float("nan"))
    adjusted = false_discovery_control(np.concatenate([per_probe[n][0][0] for n in names])).reshape(len(names), -1)
    calibrated_raw = np.concatenate([per_probe[n][0][1] for n in names])
    calibrated = false_discovery_control(calibrated_raw).reshape(len(names), -1)
    flagged = []
    for i in np.flatnonzero((adjusted <= fdr).any(axis=0)):
        hits = [names[j] for j in range(len(names)) if adjusted[j, i] <= fdr]
        best = int(np.argmin(adjusted[:, i]))
        uv = per_probe[names[best]][1]
        flagged.append(
            FlaggedSample(
                ids[i],
                int(labels[i]),
                tuple(hits),
                float(uv[0, i]),
                float(uv[1, i]),
                float(adjusted[best, i]),
                float(calibrated[:, i].min()),
            )
        )
    flagged.sort(key=lambda f: (f.p_adjusted, f.id))
    return SampleEvidence(flagged, int((calibrated <= fdr).any(axis=0).sum()), float(calibrated_raw.min()))


def null_flag_mean(null_p: dict[str, list[np.ndarray]], fdr: float) -> float | None:
    """How many samples the same joint exact test flags for an honest retrain (leave-one-out), on average."""
    lists = [v for v in null_p.values() if v]
    if not lists or len({len(v) for v in lists}) != 1:
        return None
    counts = []
    for k in range(len(lists[0])):
        adjusted = false_discovery_control(np.concatenate([v[k] for v in lists])).reshape(len(lists), -1)
        counts.append(int((adjusted <= fdr).any(axis=0).sum()))
    return float(np.mean(counts))
