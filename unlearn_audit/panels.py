"""The standard unlearning panel (:mod:`unlearn_audit.metrics`) attached to an audit's results: every subject's
panel, the references' computed once, and the records of the panel's inputs."""

from __future__ import annotations

from typing import Any

from .io.models import AuditableModel
from .progress import Progress
from .results import AuditResult, DataRecord, ModelRecord


def attach_panels(
    audit: Any, subjects: list[AuditableModel], results: dict[str, AuditResult], device: str, progress: Progress
) -> None:
    """The standard unlearning panel (metrics/panel.py) on every subject, references computed once."""
    from .metrics import PanelInputs, compute_panels

    cfg = audit.config
    panels = compute_panels(
        subjects,
        PanelInputs(audit.forget, audit.references, audit.retain, audit.test, audit.original),
        panel=cfg.panel,
        seed=cfg.library_seed("panel"),
        fdr=cfg.policy.fdr,
        level=cfg.level,
        device=device,
        progress=progress,
        r_tau_flags={name: {f.id for f in r.flagged_samples} for name, r in results.items()},
        r_tau_calibrated_flags={
            name: {f.id for f in r.flagged_samples if f.p_calibrated_adjusted <= cfg.policy.fdr}
            for name, r in results.items()
        },
    )  # fixed inference batch: float sums depend on the batch shape, and the JSON must not depend on --batch-size
    inputs = {
        "retain": DataRecord.of("retain", audit.retain).to_dict() if audit.retain is not None else None,
        "test": DataRecord.of("test", audit.test).to_dict() if audit.test is not None else None,
        "original": ModelRecord.of(audit.original).to_dict() if audit.original is not None else None,
    }
    for name, result in results.items():
        if name in panels:
            result.panel = panels[name] | {"inputs": inputs}
