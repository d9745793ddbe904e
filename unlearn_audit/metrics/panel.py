"""The standard unlearning panel for every audited model and every reference, as plain JSON-ready dicts.

``compute_panels`` is called by :class:`unlearn_audit.audit.Audit` after the r_τ analysis. Reference entries
are computed once and shared by all subjects. Each reference is scored against the *other* references
(leave-one-out) wherever a metric needs a reference, so the reference rows show what an honest retrain scores.

Entry keys (stable; documented in docs/metrics.md): ``retain_acc``, ``test_acc``, ``unlearn_acc``,
``mia_svc_unseen``, ``mia_svc_auc``, ``mia_svc_tpr_at_1fpr``, ``mia_art_unseen``, ``mia_art_auc``,
``mia_art_tpr_at_1fpr``, ``mia_reference`` (per-sample test), ``avg_gap``, ``relearn_epochs``,
``reminiscence`` (panel ``all`` only) and ``not_computed`` (metric → reason). Interval-valued entries are
``{"value", "lo", "hi", "method", "level"}`` or ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..device import resolve_device
from ..inference import predict_logits
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress
from ..stats import Estimate
from . import mia
from .accuracy import accuracy, unlearn_accuracy
from .avg_gap import avg_gap
from .relearn import RelearnSettings, forget_loss, relearn_epochs
from .reminiscence import SamplewiseSettings, attacker_rows, classwise_steps, finetune_on_retain

PanelChoice = Literal["standard", "all", "none"]
PANEL_CHOICES: tuple[str, ...] = ("standard", "all", "none")


@dataclass
class PanelInputs:
    forget: Samples
    references: Sequence[AuditableModel]
    retain: Samples | None = None
    test: Samples | None = None
    original: AuditableModel | None = None


def _est(e: Estimate | None) -> dict[str, Any] | None:
    return e.to_dict() if e is not None else None


@dataclass
class _Outputs:
    forget: np.ndarray
    retain: np.ndarray | None
    test: np.ndarray | None


class _Panel:
    def __init__(
        self,
        inputs: PanelInputs,
        *,
        panel: str,
        seed: int,
        fdr: float,
        level: float,
        device: torch.device,
        progress: Progress,
        batch_size: int,
    ) -> None:
        self.inputs = inputs
        self.panel = panel
        self.seed = seed
        self.fdr = fdr
        self.level = level
        self.device = device
        self.progress = progress
        self.batch_size = batch_size
        self.fy = inputs.forget.y.numpy()
        self.ry = inputs.retain.y.numpy() if inputs.retain is not None else None
        self.ty = inputs.test.y.numpy() if inputs.test is not None else None
        self.split = (
            mia.make_split(self.ry, self.ty, self.fy, seed) if self.ry is not None and self.ty is not None else None
        )
        self.num_classes = _num_classes(inputs)
        self.relearn_settings = RelearnSettings()
        self.samplewise_settings = SamplewiseSettings()

    # ------------------------------------------------------------------------------------------ outputs
    def logits(self, model: torch.nn.Module, samples: Samples) -> np.ndarray:
        moved = model.to(self.device)
        return predict_logits(moved, samples.x, batch_size=self.batch_size).numpy()

    def outputs(self, model: torch.nn.Module) -> _Outputs:
        i = self.inputs
        return _Outputs(
            self.logits(model, i.forget),
            self.logits(model, i.retain) if i.retain is not None else None,
            self.logits(model, i.test) if i.test is not None else None,
        )

    # ------------------------------------------------------------------------------------------ one entry
    def basic(
        self,
        name: str,
        out: _Outputs,
        others: list[_Outputs],
        r_tau: set[str] | None,
        r_tau_calibrated: set[str] | None = None,
    ) -> dict[str, Any]:
        """Accuracies, the three MIAs; ``others`` are the references this entry is measured against."""
        entry: dict[str, Any] = {"name": name}
        missing: dict[str, str] = {}
        entry["unlearn_acc"] = _est(unlearn_accuracy(out.forget, self.fy, self.level))
        if out.retain is not None:
            entry["retain_acc"] = _est(accuracy(out.retain, self.ry, self.level))  # type: ignore[arg-type]
        else:
            entry["retain_acc"] = None
            missing["retain_acc"] = "no retain set (--retain)"
        if out.test is not None:
            entry["test_acc"] = _est(accuracy(out.test, self.ty, self.level))  # type: ignore[arg-type]
        else:
            entry["test_acc"] = None
            missing["test_acc"] = "no test set (--test)"
        keys = ("unseen", "auc", "tpr_at_1fpr")
        if self.split is not None and out.retain is not None and out.test is not None:
            sets = ((out.retain, self.ry), (out.test, self.ty), (out.forget, self.fy))
            svc = mia.svc_attack(*sets, self.split, seed=self.seed, level=self.level)  # type: ignore[arg-type]
            art = mia.art_attack(
                *sets,  # type: ignore[arg-type]
                self.split,
                num_classes=self.num_classes,
                seed=self.seed,
                level=self.level,
            )
            for k in keys:
                entry[f"mia_svc_{k}"] = _est(svc[k])
                entry[f"mia_art_{k}"] = _est(art[k])
            if self.split.negatives.size == 0:
                missing["mia_*_auc"] = "the test set's second half has no sample of the forget set's classes"
        else:
            for k in keys:
                entry[f"mia_svc_{k}"] = None
                entry[f"mia_art_{k}"] = None
            missing["mia_svc"] = missing["mia_art"] = "needs both a retain set (--retain) and a test set (--test)"
        if len(others) >= 2:
            neg = self.split.negatives if self.split is not None else None
            ref = mia.reference_attack(
                out.forget,
                [o.forget for o in others],
                self.fy,
                subject_negatives=out.test[neg] if out.test is not None and neg is not None else None,
                references_negatives=[o.test[neg] for o in others if o.test is not None] if neg is not None else None,
                negatives_y=self.ty[neg] if self.ty is not None and neg is not None else None,
                fdr=self.fdr,
                seed=self.seed,
                level=self.level,
            )
            entry["mia_reference"] = ref.to_dict()
            if r_tau is not None:
                entry["mia_reference"]["agreement_with_r_tau"] = mia.agreement(
                    self.inputs.forget.ids, ref.flagged, r_tau
                )
            if r_tau_calibrated is not None:
                entry["mia_reference"]["agreement_with_r_tau_calibrated"] = mia.agreement(
                    self.inputs.forget.ids, ref.flagged, r_tau_calibrated
                )
        else:
            entry["mia_reference"] = None
            missing["mia_reference"] = f"needs at least two references to compare with (have {len(others)})"
        entry["not_computed"] = missing
        return entry

    def add_gap(self, entry: dict[str, Any], others: list[dict[str, Any]]) -> None:
        def as_estimates(e: dict[str, Any]) -> dict[str, Estimate | None]:
            return {
                k: Estimate(v["value"], v["lo"], v["hi"], v["method"], v["level"])
                if isinstance(v, dict) and v.get("value") is not None
                else None
                for k, v in e.items()
                if k in ("retain_acc", "unlearn_acc", "test_acc", "mia_svc_unseen")
            }

        gap, reason = avg_gap(as_estimates(entry), [as_estimates(o) for o in others], seed=self.seed, level=self.level)
        entry["avg_gap"] = _est(gap)
        if reason:
            entry["not_computed"]["avg_gap"] = reason


def summary_line(panel: Mapping[str, Any]) -> str:
    """One line for ``AuditResult.summary()``: the model's headline panel numbers."""
    entry = panel["model"]
    parts = []
    for key in ("retain_acc", "unlearn_acc", "test_acc", "mia_svc_unseen", "avg_gap"):
        e = entry.get(key)
        if e and e.get("value") is not None:
            parts.append(f"{key}={e['value']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]")
    if entry.get("relearn_epochs"):
        parts.append(f"relearn_epochs={entry['relearn_epochs']['display']}")
    if entry.get("mia_reference"):
        parts.append(f"mia_reference_flagged={entry['mia_reference']['flagged']}")
    return "panel: " + (", ".join(parts) if parts else "nothing computed (see not_computed)")


def _num_classes(inputs: PanelInputs) -> int:
    for model in [*inputs.references, inputs.original]:
        if model is not None and model.meta.num_classes:
            return int(model.meta.num_classes)
    ys = [inputs.forget.y] + [s.y for s in (inputs.retain, inputs.test) if s is not None]
    return int(max(int(y.max()) for y in ys if y.numel()) + 1)


def compute_panels(
    subjects: Sequence[AuditableModel],
    inputs: PanelInputs,
    *,
    panel: str = "standard",
    seed: int = 0,
    fdr: float = 0.05,
    level: float = 0.95,
    device: str | torch.device = "auto",
    progress: Progress = NULL_PROGRESS,
    r_tau_flags: Mapping[str, set[str]] | None = None,
    r_tau_calibrated_flags: Mapping[str, set[str]] | None = None,
    batch_size: int = 512,
    relearn: RelearnSettings | None = None,
) -> dict[str, dict[str, Any]]:
    """``{subject name: {"model": entry, "references": [entries], "forget_ids": [...], "settings": ..., ...}}``.

    ``r_tau_flags`` / ``r_tau_calibrated_flags``: per subject, the forget ids the r_τ per-sample tests flagged
    (exact test / retraining-calibrated test); the reference-calibrated MIA is cross-tabulated against them.
    ``relearn``: re-learn time settings (default :class:`RelearnSettings`, tuned on the bundled Fashion-MNIST set)."""
    if panel == "none":
        return {}
    p = _Panel(
        inputs,
        panel=panel,
        seed=seed,
        fdr=fdr,
        level=level,
        device=resolve_device(device),
        progress=progress,
        batch_size=batch_size,
    )
    if relearn is not None:
        p.relearn_settings = relearn
    refs = list(inputs.references)
    names = [s.meta.name for s in subjects]
    task = progress.start("panel: predictions", len(subjects) + len(refs) + (inputs.original is not None))
    outs_s: list[_Outputs] = []
    outs_r: list[_Outputs] = []
    for model in [*subjects, *refs]:
        (outs_s if len(outs_s) < len(subjects) else outs_r).append(p.outputs(model))
        task.advance(1)
    task.close()

    task = progress.start("panel: accuracies and membership inference", len(subjects) + len(refs))
    ref_entries = []
    for j, (ref, out) in enumerate(zip(refs, outs_r, strict=True)):
        ref_entries.append(p.basic(ref.meta.name, out, [o for i, o in enumerate(outs_r) if i != j], None))
        task.advance(1)
    sub_entries = []
    flags = r_tau_flags or {}
    calibrated = r_tau_calibrated_flags or {}
    for name, out in zip(names, outs_s, strict=True):
        sub_entries.append(p.basic(name, out, outs_r, flags.get(name), calibrated.get(name)))
        task.advance(1)
    task.close()
    for j, entry in enumerate(ref_entries):
        p.add_gap(entry, [e for i, e in enumerate(ref_entries) if i != j])
    for entry in sub_entries:
        p.add_gap(entry, ref_entries)

    # re-learn time -------------------------------------------------------------------------------------
    fx, fy_t = inputs.forget.x, inputs.forget.y
    if inputs.original is not None:
        original = inputs.original.to(p.device)
        target = p.relearn_settings.tolerance * forget_loss(original, fx, fy_t)
        for model, entry in [*zip(subjects, sub_entries, strict=True), *zip(refs, ref_entries, strict=True)]:
            outcome = relearn_epochs(
                model,
                fx,
                fy_t,
                target,
                settings=p.relearn_settings,
                seed=seed,
                device=p.device,
                progress=progress,
                description=f"re-learn time: {entry['name']}",
            )
            entry["relearn_epochs"] = outcome.to_dict(p.relearn_settings.cap)
    else:
        for entry in [*sub_entries, *ref_entries]:
            entry["relearn_epochs"] = None
            entry["not_computed"]["relearn_epochs"] = "needs the original model (--original)"

    notes: list[str] = []
    if panel == "all":
        _reminiscence(p, subjects, refs, outs_s, outs_r, sub_entries, ref_entries, notes)

    settings = {
        "panel": panel,
        "seed": seed,
        "fdr": fdr,
        "level": level,
        "mia_split": p.split.to_dict() if p.split is not None else None,
        "svc": {
            "kernel": "rbf",
            "C": mia.SVC_C,
            "gamma": mia.SVC_GAMMA,
            "feature": "softmax probability of the true class",
        },
        "art": {
            "attack": "MembershipInferenceBlackBox",
            "input_type": "prediction",
            "attack_model": "random forest (100 trees, random_state=seed)",
        },
        "relearn": p.relearn_settings.to_dict() | {"optimizer": "sgd", "batchnorm": "eval mode"},
        "reminiscence": p.samplewise_settings.to_dict() if panel == "all" else None,
        "units": "fractions in [0, 1]; multiply by 100 for the paper's percentage points",
    }
    panels: dict[str, dict[str, Any]] = {}
    for name, entry in zip(names, sub_entries, strict=True):
        panels[name] = {
            "model": entry,
            "references": ref_entries,
            "forget_ids": list(inputs.forget.ids),
            "settings": settings,
            "notes": notes,
        }
    return panels


def _reminiscence(
    p: _Panel,
    subjects: Sequence[AuditableModel],
    refs: list[AuditableModel],
    outs_s: list[_Outputs],
    outs_r: list[_Outputs],
    sub_entries: list[dict[str, Any]],
    ref_entries: list[dict[str, Any]],
    notes: list[str],
) -> None:
    inputs = p.inputs
    everything = [*zip(subjects, sub_entries, outs_s, strict=True), *zip(refs, ref_entries, outs_r, strict=True)]
    if inputs.retain is None:
        for _, entry, _ in everything:
            entry["reminiscence"] = None
            entry["not_computed"]["reminiscence"] = "needs a retain set (--retain) to fine-tune on"
        return
    retain = inputs.retain
    retain_x = retain.x if isinstance(retain.x, torch.Tensor) else retain.x[:]
    # sample-wise: fine-tune every model (references once) on retain only, then re-run the membership tests
    tuned: list[_Outputs] = []
    for model, entry, _ in everything:
        net = finetune_on_retain(
            model,
            retain_x,
            retain.y,
            seed=p.seed,
            settings=p.samplewise_settings,
            device=p.device,
            progress=p.progress,
            description=f"reminiscence: {entry['name']}",
        )
        tuned.append(p.outputs(net))
        del net
    n_sub = len(subjects)
    tuned_refs = tuned[n_sub:]
    for idx, (_, entry, _) in enumerate(everything):
        is_ref = idx >= n_sub
        others_after = [o for j, o in enumerate(tuned_refs) if not (is_ref and j == idx - n_sub)]
        after = tuned[idx]
        after_entry = p.basic(entry["name"], after, others_after, None)
        sample: dict[str, Any] = {
            "retain_acc_after": after_entry["retain_acc"],
            "unlearn_acc_after": after_entry["unlearn_acc"],
            "mia_svc_unseen_after": after_entry["mia_svc_unseen"],
            "mia_reference_after": None,
        }
        if after_entry["mia_svc_unseen"] is not None and entry["mia_svc_unseen"] is not None:
            sample["mia_svc_unseen_drop"] = entry["mia_svc_unseen"]["value"] - after_entry["mia_svc_unseen"]["value"]
        ref_after = after_entry.get("mia_reference")
        if ref_after is not None:
            ref_after = {k: v for k, v in ref_after.items() if k != "p_values"}
            sample["mia_reference_after"] = ref_after
            before_ref = entry.get("mia_reference")
            if before_ref is not None and before_ref.get("auc") and ref_after.get("auc"):
                sample["mia_reference_auc_added"] = ref_after["auc"]["value"] - before_ref["auc"]["value"]
            if before_ref is not None:
                sample["mia_reference_flagged_added"] = ref_after["flagged"] - before_ref["flagged"]
        elif len(others_after) < 2:
            sample["mia_reference_after"] = None
        entry["reminiscence"] = {"samplewise": sample, "classwise": None}
    # class-wise: only when a whole class was forgotten (no retain sample of that class)
    fy = p.fy
    forgotten = [int(c) for c in np.unique(fy) if not np.any(retain.y.numpy() == c)]
    if not forgotten:
        notes.append(
            "Reminiscence class-wise not run: every forget class also appears in the retain set (sample-wise "
            "forgetting); the class-wise probe needs a whole forgotten class."
        )
        for _, entry, _ in everything:
            entry["not_computed"]["reminiscence_classwise"] = "no whole class was forgotten"
        return
    if not refs:
        for _, entry, _ in everything:
            entry["not_computed"]["reminiscence_classwise"] = "needs a reference as the never-seen baseline"
        return
    results: list[dict[int, float]] = []
    details: list[dict[str, Any]] = []
    for model, entry, _ in everything:
        per_class: dict[int, float] = {}
        detail: dict[str, Any] = {}
        for cls in forgotten:
            rows = attacker_rows(fy, cls, p.seed)
            xs = inputs.forget.x[torch.as_tensor(rows)]
            outcome = classwise_steps(
                model,
                xs,
                inputs.forget.y[torch.as_tensor(rows)],
                retain_x,
                retain.y,
                seed=p.seed,
                forgotten_class=cls,
                device=p.device,
                progress=p.progress,
                description=f"reminiscence class {cls}: {entry['name']}",
            )
            per_class[cls] = outcome.mean_steps
            detail[str(cls)] = outcome.to_dict()
        results.append(per_class)
        details.append(detail)
    ref_results = results[n_sub:]
    for idx, (_, entry, _) in enumerate(everything):
        is_ref = idx >= n_sub
        baseline = [r for j, r in enumerate(ref_results) if not (is_ref and j == idx - n_sub)]
        scores = {
            str(c): (float(np.mean([b[c] for b in baseline])) - results[idx][c]) if baseline else None
            for c in forgotten
        }
        entry["reminiscence"]["classwise"] = {"classes": details[idx], "score": scores}
