"""``RemediationResult``: what a remediation did, and whether the same audit now passes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..io.models import AuditableModel
    from ..results import AuditResult


@dataclass
class RemediationResult:
    """The remediated model, the audit before and after, and the accuracy it cost.

    ``success`` is True only when the re-run audit's verdict is ``pass`` **and** retain accuracy fell by at most
    ``budget`` percentage points. ``trials`` lists every run of a search (one entry without a search).
    """

    method: str
    hyperparameters: dict[str, Any]
    input_sha256: str | None
    model: AuditableModel
    before: AuditResult
    after: AuditResult
    retain_acc: dict[str, float]
    test_acc: dict[str, float | None]
    success: bool
    reason: str
    budget: float
    seed: int
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def retain_drop_points(self) -> float:
        return 100.0 * (self.retain_acc["before"] - self.retain_acc["after"])

    @property
    def exit_code(self) -> int:
        """As ``check``: 0 when the remediation succeeded, 1 when it did not (a finding remains)."""
        return 0 if self.success else 1

    def summary(self) -> str:
        def probes(result: AuditResult) -> str:
            return ", ".join(f"{n} R={p.pooled.value:.3f}" for n, p in result.probes.items())

        test = self.test_acc
        lines = [
            f"remediation {self.method}: {'success' if self.success else 'NOT successful'} - {self.reason}",
            f"  before: {self.before.verdict.kind} ({probes(self.before)})",
            f"  after:  {self.after.verdict.kind} ({probes(self.after)})",
            f"  retain accuracy {self.retain_acc['before']:.4f} -> {self.retain_acc['after']:.4f} "
            f"({-self.retain_drop_points:+.2f} points; budget -{self.budget:g})",
        ]
        if test.get("before") is not None and test.get("after") is not None:
            lines.append(f"  test accuracy   {test['before']:.4f} -> {test['after']:.4f}")
        lines.append(f"  trials: {len(self.trials)}, {self.seconds:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from ..report.json import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "tool": "unlearn-audit",
            "kind": "remediation",
            "method": self.method,
            "hyperparameters": dict(self.hyperparameters),
            "input_sha256": self.input_sha256,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "retain_acc": dict(self.retain_acc),
            "test_acc": dict(self.test_acc),
            "success": bool(self.success),
            "reason": self.reason,
            "trials": list(self.trials),
            "budget": self.budget,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
        }

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        from ..results import jsonable

        text = json.dumps(jsonable(self.to_dict()), indent=indent, allow_nan=False) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text
