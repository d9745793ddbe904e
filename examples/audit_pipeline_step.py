"""An audit as a pipeline step: audit a model that claims to have forgotten a forget set, fail the step if not.

Run from the repository root after ``make venv``::

    .venv/bin/python examples/audit_pipeline_step.py

It audits the bundled GD model (fine-tuned on the retain set only: a classic "unlearning" that leaves residual
knowledge) against three retrained references, with a reduced draw count so that it runs in well under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

from unlearn_audit.audit import Audit, AuditConfig

ROOT = Path(__file__).resolve().parent.parent / "reference_models" / "fmnist-small"


def main() -> int:
    audit = Audit(
        references=[ROOT / f"retrain-{i}.safetensors" for i in (2, 3, 4)],
        forget=ROOT / "forget.npz",
        config=AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 0.01, 0.02, 0.03), draws=10, seed=0),
    )
    result = audit.run(ROOT / "gd.safetensors")
    print(result.summary())
    out = Path("example-output")
    out.mkdir(exist_ok=True)
    result.to_json(out / "audit-gd.json")
    # The exit code follows `unlearn-audit check`: 0 pass, 1 a finding (residual knowledge or over-unlearning).
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
