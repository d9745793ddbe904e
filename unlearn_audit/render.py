"""What the command line prints about results: audit tables and verdicts, the unlearning panel, a model's
description, the demo's summary. Plain values in, console lines out; rich stays inside :mod:`.console`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import console

if TYPE_CHECKING:
    from .audit import AuditResult
    from .demo import DemoOutcome
    from .info import ModelInfo
    from .remediation import RemediationResult

VERDICT_STYLE = {
    "pass": "bold green",
    "residual_knowledge": "bold red",
    "over_unlearning": "bold yellow",
    "inconclusive": "bold blue",
}


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def note(message: str) -> None:
    """A dim line of plain text (file names, ids and reasons are never read as markup)."""
    console.say(message, style="dim", markup=False)


def render_result(result: AuditResult, *, title: str | None = None) -> None:
    """Summary table (probe × τ) and the verdict, on stdout."""
    if result.probes:
        rows = []
        for name, probe in result.probes.items():
            for row in probe.taus:
                s = row.stats
                band = row.null_band
                rows.append(
                    [
                        name,
                        f"{s.tau:.4f}",
                        f"{_fmt(s.R.value)} [{_fmt(s.R.lo)}, {_fmt(s.R.hi)}]",
                        f"[{_fmt(band.lo)}, {_fmt(band.hi)}]" if band else "—",
                        _fmt(s.p_m.value),
                        _fmt(s.p_a.value),
                        _fmt(s.frac_u_gt_v.value, 2),
                        _fmt(s.disagreement.value),
                        f"{_fmt(row.R_norm.value)}" if row.R_norm else "—",
                    ]
                )
        console.table(
            title or f"residual knowledge: {result.model.name}",
            ["probe", "τ", "R [95% CI]", "null band", "p_m", "p_a", "u>v̄", "disagree", "R_norm"],
            rows,
        )
        verdict_rows = [
            [
                name,
                f"{p.decisive[0]} = {_fmt(p.decisive[1].value)} [{_fmt(p.decisive[1].lo)}, {_fmt(p.decisive[1].hi)}]",
                f"[{_fmt(p.band.lo)}, {_fmt(p.band.hi)}]",
                p.verdict.kind + ("" if p.counts_toward_verdict else " (not counted)"),
            ]
            for name, p in result.probes.items()
        ]
        level = next(iter(result.probes.values())).pooled.level
        console.table(
            f"per-probe verdicts (pooled over the policy's τ range, {level:.1%} CI)",
            ["probe", "statistic", "null band", "verdict"],
            verdict_rows,
        )
    for name, sc in result.screening.items():
        rows = [
            [
                name,
                f"{r['tau']:.4f}",
                f"{_fmt(r['R_proxy']['value'])} [{_fmt(r['R_proxy']['lo'])}, {_fmt(r['R_proxy']['hi'])}]",
                _fmt(r["p_m_forget"]),
                _fmt(r["p_m_holdout"]),
            ]
            for r in sc.taus
        ]
        console.table(
            f"screening (no reference): {name}", ["probe", "τ", "R_proxy [95% CI]", "p_m forget", "p_m holdout"], rows
        )
    if result.flagged_samples:
        shown = result.flagged_samples[:10]
        console.table(
            f"forget samples with significant residual knowledge ({len(result.flagged_samples)}; first {len(shown)})",
            ["id", "label", "probes", "u", "v̄", "adj. p"],
            [[f.id, f.label, ",".join(f.probes), f"{f.u:.1f}", f"{f.v_bar:.1f}", f"{f.p_adjusted:.2g}"] for f in shown],
        )
    if result.panel:
        render_panel(result.panel)
    for line in draws_auto_lines(result.draws_auto):
        note(line)
    style = VERDICT_STYLE.get(result.verdict.kind, "bold")
    console.say(f"[{style}]verdict: {result.verdict.kind}[/] (exit code {result.exit_code})")
    console.say(result.verdict.reason, markup=False)
    note(result.config.policy.describe())
    for record in [result.model, *result.references]:
        check = conversion_check(record.metadata)
        if check:
            note(f"{record.name}: {check}")
    for line in result.notes:
        note(f"note: {line}")


def draws_auto_lines(record: Mapping[str, Any] | None) -> list[str]:
    """``--draws auto``: one line per probe, the variance split the pilot measured and the draws it chose."""
    if not record:
        return []
    pilot = record["pilot"]
    lines = []
    for name, p in record["probes"].items():
        if p["source"] == "override":
            lines.append(f"draws auto, {name}: {p['draws']} draws, set by --draws {name}=N (no pilot)")
            continue
        lo, hi = p["bounds"]
        clipped = {"min": f"; clipped at the minimum {lo}", "max": f"; clipped at the maximum {hi}"}.get(
            p["clipped"] or "", ""
        )
        lines.append(
            f"draws auto, {name}: {p['statistic']}'s variance per sample: between {_fmt(p['between_variance'], 4)}, "
            f"Monte-Carlo {_fmt(p['within_variance_per_draw'], 4)}/draw → {p['draws']} draws, MC share "
            f"{100 * (p['mc_share'] or 0):.1f}% (target ≤ {100 * p['target_share']:.0f}%{clipped}); "
            f"pilot {pilot['samples']} of {pilot['of']} samples × {pilot['draws'][name]} draws"
        )
    return lines


def render_panel(panel: dict) -> None:
    """The standard unlearning panel (metrics/panel.py): one row for the model, one per reference."""

    def pct(e: dict | None, ci: bool = False) -> str:
        if not e or e.get("value") is None:
            return "—"
        return f"{100 * e['value']:.1f}" + (f" [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]" if ci else "")

    def auc(e: dict | None) -> str:
        return "—" if not e or e.get("value") is None else f"{e['value']:.2f}"

    entries = [panel["model"], *panel["references"]]
    reminiscence = any(e.get("reminiscence") for e in entries)
    rows = []
    for entry in entries:
        ref = entry.get("mia_reference")
        relearn = entry.get("relearn_epochs")
        row = [
            entry["name"],
            pct(entry.get("retain_acc")),
            pct(entry.get("unlearn_acc"), ci=True),
            pct(entry.get("test_acc")),
            pct(entry.get("mia_svc_unseen"), ci=True),
            f"{auc(entry.get('mia_svc_auc'))}/{auc(entry.get('mia_art_auc'))}",
            f"{ref['flagged']} ({auc(ref.get('auc'))})" if ref else "—",
            pct(entry.get("avg_gap"), ci=True),
            relearn["display"] if relearn else "—",
        ]
        if reminiscence:
            rea = (entry.get("reminiscence") or {}).get("samplewise") or {}
            added = rea.get("mia_reference_auc_added")
            row.append("—" if added is None else f"{added:+.3f}")
        rows.append(row)
    columns = [
        "model",
        "Retain",
        "Unlearn",
        "Test",
        "MIA unseen",
        "AUC SVC/ART",
        "ref-MIA (AUC)",
        "Avg Gap",
        "re-learn",
    ]
    console.table(
        "standard unlearning panel (% ; [95% CI]; all intervals in the JSON; references scored against the others)",
        columns + (["ReA ΔAUC"] if reminiscence else []),
        rows,
    )
    agree = (panel["model"].get("mia_reference") or {}).get("agreement_with_r_tau")
    if agree:
        note(
            f"reference-calibrated MIA vs r_τ flags: both {agree['both']}, only r_τ {agree['only_r_tau']}, "
            f"only MIA {agree['only_reference_mia']} (κ {agree['cohen_kappa']})"
        )
    for key, reason in panel["model"].get("not_computed", {}).items():
        note(f"panel: {key} not computed: {reason}")
    for line in panel.get("notes", []):
        note(f"panel: {line}")


def render_remediation(result: RemediationResult, out: Path, digest: str) -> None:
    """Before and after, the one-sentence outcome, and where the remediated model went."""
    render_result(result.before, title="before")
    render_result(result.after, title="after")
    console.say(result.summary(), markup=False)
    note(f"remediated model written to {out} ({digest})")


#: How ``info`` names each form a model arrives in (:attr:`~unlearn_audit.info.ModelInfo.model_format`).
MODEL_FORMATS = {
    "safetensors": "safetensors state dict",
    "pickle": "torch.save pickle (read with weights_only=True)",
    "pt2": "torch.export program (.pt2)",
    "onnx": "ONNX, converted to torch by onnx2torch",
    "timm": "timm checkpoint",
    "hf": "Hugging Face transformers image classifier",
    "in-memory": "a module in memory",
}


def conversion_check(metadata: Mapping[str, Any]) -> str | None:
    """One line on how a model converted from ONNX agreed with onnxruntime (``onnx_check`` in its metadata, written by
    io/formats/onnx_models.py); None for other models."""
    if metadata.get("model_format") != "onnx" or not metadata.get("onnx_check"):
        return None
    try:
        record = json.loads(metadata["onnx_check"])
        outcome = "passed" if record["passed"] else "FAILED"
        return (
            f"ONNX check against {record['reference']}: {outcome} on {record['on']}; max |Δlogit| "
            f"{float(record['max_abs_logit_diff']):.2g}, {record['argmax_disagreements']} of {record['rows']} "
            f"predictions differ (tolerance {record['tolerance']}; {record['converter']})"
        )
    except (ValueError, KeyError, TypeError):
        return f"ONNX check: {metadata['onnx_check']}"


def render_model_info(path: Path, described: ModelInfo) -> None:
    """``info``: what the checkpoint is, and its accuracy on the given data."""
    check = conversion_check(described.metadata)
    rows: list[tuple[str, object]] = [
        ("file", path),
        ("format", MODEL_FORMATS.get(described.model_format, described.model_format)),
        *([("ONNX check", check.removeprefix("ONNX check "))] if check else []),
        ("sha256", described.sha256),
        ("arch", described.arch),
        ("classes", described.num_classes),
        ("input shape", "x".join(map(str, described.input_shape)) if described.input_shape else "unknown"),
        ("parameters", f"{described.parameters:,}"),
        ("batch norm", "yes" if described.has_batchnorm else "no"),
        ("normalisation", described.normalisation),
    ]
    shown = {"model_format", "onnx_check"} if check else {"model_format"}
    rows += [(f"meta: {k}", v) for k, v in sorted(described.metadata.items()) if k not in shown]
    if described.accuracy is not None:
        acc = described.accuracy
        rows += [
            ("data", f"{described.data} ({described.samples} samples)"),
            ("accuracy", f"{acc.value:.2%}  (95% Wilson CI {acc.lo:.2%} – {acc.hi:.2%})"),
        ]
    console.key_values(f"unlearn-audit info: {path.name}", rows)


def render_unlearned(
    method: str, source: Path, source_sha256: str | None, out: Path, digest: str, hparams: Mapping[str, Any], seed: int
) -> None:
    """``unlearn``: input and output with their hashes, the hyper-parameters used and the seed."""
    console.key_values(
        f"unlearn-audit unlearn {method}",
        [
            ("input", f"{source} ({source_sha256})"),
            ("output", f"{out} ({digest})"),
            ("hyper-parameters", json.dumps(dict(hparams), sort_keys=True)),
            ("seed", seed),
        ],
    )


DEMO_INTRO = (
    "Auditing the original model, GD (fine-tuned on the retain set), GA (gradient ascent on the forget set) "
    "and an honest retrain, each against three other retrains. Probes: Gaussian, FGSM, PGD. Then GD is "
    "remediated with RURK and re-audited."
)


def render_demo_intro() -> None:
    console.say(
        "unlearn-audit demo: Fashion-MNIST, forget = 500 images of class 0, small CNN", style="bold", markup=False
    )
    console.say(DEMO_INTRO, markup=False)


def render_demo(outcome: DemoOutcome, out: Path, seconds: float) -> None:
    """The demo's verdicts against what each bundled model was built to show, then the remediation."""
    rows = []
    for name, result in outcome.results.items():
        expected = outcome.expected[name]
        rows.append(
            [
                name,
                result.model.metadata.get("method", "?"),
                *[f"{p.pooled.value:.3f} [{p.pooled.lo:.3f}, {p.pooled.hi:.3f}]" for p in result.probes.values()],
                result.verdict.kind,
                "yes" if result.verdict.kind == expected else f"NO (expected {expected})",
            ]
        )
    first = next(iter(outcome.results.values()))
    level = next(iter(first.probes.values())).pooled.level
    console.table(
        f"demo: R pooled over τ ({level:.1%} CI) and verdicts",
        ["model", "method", *[f"R {p}" for p in first.probes], "verdict", "as expected"],
        rows,
    )
    for name, result in outcome.results.items():
        console.say(f"{name}: {result.verdict.reason}", markup=False)
    fix = outcome.remediation
    if fix is not None:
        console.say(
            f"Remediation: RURK on {fix.before.model.name}, re-audited on the Gaussian probe: "
            f"{fix.before.verdict.kind} -> {fix.after.verdict.kind}, retain accuracy "
            f"{fix.retain_acc['before']:.1%} -> {fix.retain_acc['after']:.1%}. {fix.reason}",
            style="bold",
            markup=False,
        )
    note(f"JSON, HTML and Markdown reports in {out}/ (open {out}/gd/report.html; {seconds:.0f} s)")
    if not outcome.all_as_expected:
        console.warn("some verdicts differ from what the reference models were built to show")
