"""The offline demo: the bundled Fashion-MNIST reference models, audited end to end, and one of them fixed.

Four subjects (the original, GD, GA and one honest retrain) are audited against three other retrains in
one engine pass. Settings are scaled down from the paper's (20 draws, 4 draws for PGD, a 5-point τ grid)
so that the demo runs in about a minute on two CPU cores; ``unlearn-audit check`` uses the paper's defaults.
Then the loop closes: GD is remediated with RURK and re-audited (Gaussian probe, the neighbourhood RURK trains
on; docs/remediation.md explains why FGSM is reported but not counted there), and every result gets an HTML and
a Markdown report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audit import Audit, AuditConfig, AuditResult
from .progress import NULL_PROGRESS, Progress, phase
from .remediation import RemediationResult
from .report import write_report

log = logging.getLogger(__name__)

SUBJECTS = {"original": "original", "gd": "gd", "ga": "ga", "retrain-1": "retrain-1"}
REFERENCES = ("retrain-2", "retrain-3", "retrain-4")
EXPECTED = {"original": "residual_knowledge", "gd": "residual_knowledge", "ga": "over_unlearning", "retrain-1": "pass"}
DEMO_CONFIG = AuditConfig(
    probes=("gaussian", "fgsm", "pgd"),
    taus=tuple(float(t) for t in np.linspace(0.0, 8.0 / 255.0, 5)),
    draws=20,
    probe_draws=(("pgd", 4),),
    seed=0,
    bootstrap=1000,
)


REMEDIATION_SUBJECT = "gd"
REMEDIATION_HPARAMS: dict[str, Any] = {"lambda_neighbour": 0.0505}
"""λ_a found for GD by the verify loop's search (docs/remediation.md, benchmarks/remediation.py), mid-way in a pass
window from about 0.0495 to 0.0515 that measured the same under every CPU kernel set tried (docs/testing.md)."""
REMEDIATION_SEARCH = True
"""Run the verify loop's search from that λ_a: one trial where it passes (every machine measured so far), and
back into the window, rather than a failed demo, on a machine whose rounding moves it."""
REMEDIATION_CONFIG = AuditConfig(probes=("gaussian",), taus=(0.0, 4 / 255, 8 / 255), draws=10, seed=0, bootstrap=500)


@dataclass(frozen=True)
class DemoOutcome:
    results: dict[str, AuditResult]
    expected: dict[str, str]
    files: dict[str, Path]
    remediation: RemediationResult | None = None

    @property
    def all_as_expected(self) -> bool:
        verdicts = all(self.results[name].verdict.kind == kind for name, kind in self.expected.items())
        return verdicts and (self.remediation is None or self.remediation.success)


def run_demo(
    models_dir: Path,
    out: Path,
    *,
    device: str = "auto",
    progress: Progress = NULL_PROGRESS,
    config: AuditConfig = DEMO_CONFIG,
    remediate: bool = True,
    cache_dir: str | Path | bool | None = None,
) -> DemoOutcome:
    root = models_dir / "fmnist-small"
    cfg = AuditConfig(**{**config.__dict__, "device": device})
    audit = Audit(
        references=[root / f"{name}.safetensors" for name in REFERENCES],
        forget=root / "forget.npz",
        config=cfg,
        progress=progress,
        command=f"unlearn-audit demo --models-dir {models_dir} --out {out}",
        cache_dir=cache_dir,
    )
    with phase(progress, f"audit of {', '.join(SUBJECTS)}", logger=log):
        results = audit.run_many({name: root / f"{file}.safetensors" for name, file in SUBJECTS.items()})
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, result in results.items():
        path = out / f"{name}.json"
        result.to_json(path)
        files[name] = path
    summary: dict[str, dict[str, Any]] = {
        name: {
            "verdict": r.verdict.kind,
            "expected": EXPECTED[name],
            "reason": r.verdict.reason,
            "R": {p: round(a.pooled.value, 4) for p, a in r.probes.items()},
        }
        for name, r in results.items()
    }
    with phase(progress, "writing the reports", len(results), logger=log) as task:
        for name, result in results.items():
            report = write_report(result.to_dict(), out / name, ("html", "md"), thumbnails=audit.forget)
            files[f"{name}-report"] = report["html"]
            task.advance(1)
    remediation = None
    if remediate:
        fixer = Audit(
            references=[root / f"{name}.safetensors" for name in REFERENCES],
            forget=root / "forget.npz",
            config=AuditConfig(**{**REMEDIATION_CONFIG.__dict__, "device": device}),
            progress=progress,
            command=f"unlearn-audit demo --models-dir {models_dir} --out {out}",
            cache_dir=audit.reference_cache,  # one store: the remediation's audits reuse the references' side
        )
        remediation = fixer.remediate(
            root / f"{REMEDIATION_SUBJECT}.safetensors",
            retain=root / "retain_subset.npz",
            test=root / "test.npz",
            search=REMEDIATION_SEARCH,
            **REMEDIATION_HPARAMS,
        )
        name = f"remediation-{REMEDIATION_SUBJECT}"
        doc = json.loads(remediation.to_json(out / f"{name}.json"))
        files[name] = write_report(doc, out / name, ("html", "md"), thumbnails=fixer.forget)["html"]
        summary[name] = {"success": remediation.success, "reason": remediation.reason}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    files["summary"] = out / "summary.json"
    return DemoOutcome(results, dict(EXPECTED), files, remediation)
