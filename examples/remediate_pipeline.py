"""Remediation as a pipeline step: audit a model, fix it with RURK if it fails, prove the fix, ship the file.

Run from the repository root after ``make venv``::

    .venv/bin/python examples/remediate_pipeline.py

It takes the bundled GD model (fine-tuned on the retain set only, which leaves residual knowledge of the forget
set), remediates it with RURK, re-runs the same audit against three held-out retrains, and writes the fixed
model plus a before/after JSON. The step fails (exit 1) unless the audit now passes and retain accuracy fell by
at most 2 points. The verdict counts the Gaussian probe (the neighbourhood RURK trains on); FGSM is run and
reported beside it (docs/remediation.md explains why). The λ_a search runs up to 10 trials: a few minutes on a
laptop CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.io.models import save_model
from unlearn_audit.policy import Policy

ROOT = Path(__file__).resolve().parent.parent / "reference_models" / "fmnist-small"
OUT = Path("example-output")


def main() -> int:
    audit = Audit(
        references=[ROOT / f"retrain-{i}.safetensors" for i in (2, 3, 4)],
        forget=ROOT / "forget.npz",
        config=AuditConfig(
            probes=("gaussian", "fgsm"),
            taus=(0.0, 4 / 255, 8 / 255),
            draws=10,
            seed=0,
            bootstrap=500,
            policy=Policy(probes=("gaussian",)),
        ),
    )
    result = audit.remediate(
        ROOT / "gd.safetensors",
        retain=ROOT / "retain_subset.npz",
        test=ROOT / "test.npz",
        method="rurk",
        budget=2.0,
        search=True,
    )
    print(result.summary())
    OUT.mkdir(exist_ok=True)
    result.to_json(OUT / "remediation-gd.json")
    if result.success:
        save_model(
            result.model,
            OUT / "gd-remediated.safetensors",
            method=result.method,
            hparams=result.hyperparameters,
            parent_sha256=result.input_sha256,
        )
    # Exit codes follow `unlearn-audit remediate`: 0 the fix is proven, 1 it is not.
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
