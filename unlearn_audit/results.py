"""What an audit found, as plain records: ``AuditResult`` (the JSON report), the model and data records it
holds, and the JSON helpers. Both the audit flow (:mod:`unlearn_audit.audit`) and remediation import them from
here, so neither imports the other's module for its types.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import ProbeAnalysis
from .commitment import binding
from .config import AuditConfig
from .evidence import FlaggedSample
from .io.models import AuditableModel
from .io.samples import Samples
from .policy import Verdict
from .probes.counts import ProbeCounts
from .report.json import AUDIT_LIMITS, SCHEMA_VERSION, provenance_files
from .screening import ScreeningAnalysis
from .version import __version__


@dataclass(frozen=True)
class ModelRecord:
    name: str
    path: str | None
    sha256: str | None
    arch: str | None
    num_classes: int | None
    metadata: dict[str, str]

    @classmethod
    def of(cls, model: AuditableModel) -> ModelRecord:
        m = model.meta
        return cls(m.name, m.path, m.sha256, m.arch, m.num_classes, dict(m.extra))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DataRecord:
    role: str
    source: str
    sha256: str | None
    content_sha256: str
    samples: int
    classes: list[int]

    @classmethod
    def of(cls, role: str, samples: Samples) -> DataRecord:
        return cls(role, samples.source, samples.sha256, samples.content_sha256, len(samples), samples.classes())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AuditResult:
    """Everything an audit found. ``to_dict()`` is the JSON report (schema ``SCHEMA_VERSION``)."""

    verdict: Verdict
    model: ModelRecord
    references: list[ModelRecord]
    forget: DataRecord
    holdout: DataRecord | None
    config: AuditConfig
    probes: dict[str, ProbeAnalysis]
    flagged_samples: list[FlaggedSample]
    screening: dict[str, ScreeningAnalysis]
    provenance: dict[str, Any]
    precision: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    panel: dict[str, Any] | None = None
    sample_evidence: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, ProbeCounts] = field(default_factory=dict, repr=False)
    draws_auto: dict[str, Any] | None = None
    """``--draws auto``: the pilot and the draws it chose per probe (pilot.DrawsAuto.to_dict); None otherwise."""
    remote: dict[str, Any] | None = None
    """Served models' endpoints, access modes and queries used (io/remote); None when every model was local."""
    sequential: dict[str, Any] | None = None
    """A sequential audit's looks, stopping look and cost (unlearn_audit/sequential.py); None for a full audit."""

    @property
    def mode(self) -> str:
        return "reference" if self.references else "screening"

    @property
    def reason(self) -> str:
        return self.verdict.reason

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def null_band(self) -> dict[str, Any]:
        return {name: p.band.to_dict() for name, p in self.probes.items()}

    def table(self) -> list[dict[str, Any]]:
        """One row per probe and τ: the summary table as plain values."""
        rows = []
        for name, p in self.probes.items():
            for row in p.taus:
                s = row.stats
                rows.append(
                    {
                        "probe": name,
                        "tau": s.tau,
                        "R": s.R.value,
                        "R_lo": s.R.lo,
                        "R_hi": s.R.hi,
                        "p_m": s.p_m.value,
                        "p_a": s.p_a.value,
                        "frac_u_gt_v": s.frac_u_gt_v.value,
                        "disagreement": s.disagreement.value,
                        "null_lo": row.null_band.lo if row.null_band else None,
                        "null_hi": row.null_band.hi if row.null_band else None,
                    }
                )
        for name, sc in self.screening.items():
            for srow in sc.taus:
                rows.append(
                    {
                        "probe": name,
                        "tau": srow["tau"],
                        "R_proxy": srow["R_proxy"]["value"],
                        "R_lo": srow["R_proxy"]["lo"],
                        "R_hi": srow["R_proxy"]["hi"],
                        "p_m": srow["p_m_forget"],
                        "p_holdout": srow["p_m_holdout"],
                    }
                )
        return rows

    def summary(self) -> str:
        lines = [f"verdict: {self.verdict.kind}", f"reason: {self.verdict.reason}", self.config.policy.describe()]
        for name, p in self.probes.items():
            label, est = p.decisive
            lines.append(
                f"  {name:<16} {label}={est.value:.3f} [{est.lo:.3f}, {est.hi:.3f}] "
                f"band [{p.band.lo:.3f}, {p.band.hi:.3f}] -> {p.verdict.kind}"
            )
        for name, s in self.screening.items():
            lines.append(
                f"  {name:<16} R_proxy={s.pooled.value:.3f} [{s.pooled.lo:.3f}, {s.pooled.hi:.3f}] -> {s.verdict.kind}"
            )
        lines.append(f"flagged samples: {len(self.flagged_samples)} {self.sample_evidence}")
        if self.panel:
            from .metrics.panel import summary_line

            lines.append(summary_line(self.panel))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        hashes = {"model": self.model.sha256, "forget": self.forget.sha256 or self.forget.content_sha256}
        for i, ref in enumerate(self.references):
            hashes[f"reference_{i}"] = ref.sha256
        if self.holdout is not None:
            hashes["holdout"] = self.holdout.sha256 or self.holdout.content_sha256
        out = {
            "schema_version": SCHEMA_VERSION,
            "kind": "audit",
            "tool": "unlearn-audit",
            "mode": self.mode,
            "verdict": self.verdict.kind,
            "reason": self.verdict.reason,
            "verdict_detail": self.verdict.to_dict(),
            "policy": self.config.policy.to_dict(),
            "policy_text": self.config.policy.describe(),
            "model": self.model.to_dict(),
            "references": [r.to_dict() for r in self.references],
            "forget": self.forget.to_dict(),
            "holdout": self.holdout.to_dict() if self.holdout else None,
            "probes": {name: p.to_dict() for name, p in self.probes.items()},
            "screening": {name: s.to_dict() for name, s in self.screening.items()},
            "null_band": self.null_band(),
            "flagged_samples": [f.to_dict() for f in self.flagged_samples],
            "sample_evidence": self.sample_evidence,
            "panel": self.panel,
            "config": self.config.to_dict(),
            "seed": self.public_seed,
            "seed_commitment": self.config.seed_commitment,
            "precision": self.precision,
            "notes": list(self.notes),
            "versions": {"unlearn_audit": __version__, **self.provenance.get("versions", {})},
            "hashes": hashes,
            "provenance": self.provenance,
        }
        if self.draws_auto is not None:
            out["draws_auto"] = self.draws_auto
        if self.remote is not None:
            out["remote"] = self.remote
        if self.sequential is not None:
            out["sequential"] = self.sequential
        out["provenance"] = {
            **self.provenance,
            "tool": {"name": "unlearn-audit", "version": __version__},
            "seed": self.public_seed,
            "files": provenance_files(out),
        }
        out["binding"] = self.binding(out)
        out["limits"] = AUDIT_LIMITS
        return out

    @property
    def public_seed(self) -> int | None:
        """The seed as the JSON shows it: ``None`` when it is an audit-time secret (``seed_commitment`` stands in)."""
        return None if self.config.secret_seed else self.config.seed

    def binding(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The verdict bound to the SHA-256 of every input, the policy, the config, the tool and the seed."""
        files = {role: sha for role, sha in doc["hashes"].items()}
        for role, record in ((self.panel or {}).get("inputs") or {}).items():
            if record:
                files[role] = record.get("sha256") or record.get("content_sha256")
        seed = {"commitment": self.config.seed_commitment} if self.config.secret_seed else {"value": self.config.seed}
        return binding(files, jsonable(doc["policy"]), jsonable(doc["config"]), __version__, seed, self.verdict.kind)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        text = json.dumps(jsonable(self.to_dict()), indent=indent, sort_keys=False, allow_nan=False) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers, paths as strings and non-finite floats as ``None`` (JSON null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return jsonable(float(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    from importlib import metadata

    for dist in ("scikit-learn", "safetensors", "adversarial-robustness-toolbox"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            pass
    version = _torchvision_version()
    if version is not None:
        versions["torchvision"] = version
    return versions


def _torchvision_version() -> str | None:
    """torchvision's ``__version__`` (with its build tag, e.g. ``+cu130``) without importing it when it is not
    loaded yet: the import costs seconds (it pulls in torch._dynamo), a noticeable share of a small ``check``."""
    import sys

    if "torchvision" in sys.modules:
        return str(sys.modules["torchvision"].__version__)
    import importlib.util
    import re
    from importlib import metadata

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        try:
            found = re.search(
                r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", (Path(folder) / "version.py").read_text(), re.M
            )
        except OSError:
            continue
        if found:
            return found.group(1)
    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return None
