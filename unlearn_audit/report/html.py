"""The HTML report: one self-contained file (inline CSS, inline SVG plots, data: thumbnails, no scripts, no
network fetches; a Content-Security-Policy forbids them). Templates are jinja2 under ``templates/``."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from . import plots
from .json import AUDIT_LIMITS, SCHEMA_VERSION

HEADLINES = {
    "pass": "Pass: the audited model behaves like a model retrained without the forget set.",
    "residual_knowledge": (
        "Residual knowledge: the audited model still recognises the forget set more than models retrained without it."
    ),
    "over_unlearning": (
        "Over-unlearning: the audited model recognises the forget set less than retrained models do, "
        "which itself reveals what was removed."
    ),
    "inconclusive": "Inconclusive: the evidence does not decide whether the model forgot the forget set.",
}

PANEL_LABELS = {
    "retain_acc": "retain accuracy",
    "test_acc": "test accuracy",
    "unlearn_acc": "unlearn accuracy (1 − forget-set accuracy)",
    "forget_acc": "forget-set accuracy",
    "mia_svc_unseen": "membership inference (SVC, vs unseen)",
    "avg_gap": "average gap to retraining",
    "relearn_epochs": "epochs to relearn",
    "mia_svc_auc": "membership inference (SVC), AUC",
    "mia_svc_tpr_at_1fpr": "membership inference (SVC), TPR at 1% FPR",
    "mia_art_unseen": "membership inference (ART, vs unseen)",
    "mia_art_auc": "membership inference (ART), AUC",
    "mia_art_tpr_at_1fpr": "membership inference (ART), TPR at 1% FPR",
}
#: Structured panel keys (docs/metrics.md) that are not one interval: shown in the JSON, not as table rows.
PANEL_STRUCTURED = ("name", "metrics", "not_computed", "mia_reference", "reminiscence")


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return "—" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def fmt_p(x: Any) -> str:
    if x is None:
        return "—"
    x = float(x)
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def fmt_interval(entry: Any, digits: int = 3) -> str:
    if entry is None:
        return "—"
    if isinstance(entry, dict):
        if isinstance(entry.get("display"), str):  # e.g. re-learn time ">30" (value 31, censored)
            return entry["display"]
        text = fmt(entry.get("value"), digits)
        if entry.get("lo") is not None and entry.get("hi") is not None:
            text += f" [{fmt(entry['lo'], digits)}, {fmt(entry['hi'], digits)}]"
        return text
    return fmt(entry, digits)


def decisive(probe: dict[str, Any]) -> tuple[str, Any]:
    """The statistic a probe's verdict tested, with its label: ``("R", pooled)``, or ``("D", excess_pooled)`` where
    a whole class was forgotten (``statistic == "excess"``: the references never recognise it and R is
    undefined). Result files from before the excess rate have no ``statistic`` key: R."""
    if probe.get("statistic") == "excess" and probe.get("excess_pooled"):
        return "D", probe["excess_pooled"]
    return "R", probe.get("pooled")


def excess_row(row: dict[str, Any]) -> dict[str, Any]:
    """Per-τ D = p_m − p_ā for the tables, with the range the p_m and p_ā intervals allow (plots.excess_interval)."""
    lo, hi = plots.excess_interval(row)
    p_m, p_a = row["p_m"].get("value"), row["p_a"].get("value")
    d = None if p_m is None or p_a is None else float(p_m) - float(p_a)
    return {"value": d, "lo": lo, "hi": hi}


def headline(kind: str) -> str:
    return HEADLINES.get(kind, f"Verdict: {kind}.")


def _panel(panel: dict[str, Any] | None) -> dict[str, Any] | None:
    if not panel or not isinstance(panel, dict):
        return None
    model = panel.get("model") or {}
    columns = ["audited model"]
    cells: list[dict[str, Any]] = [model if isinstance(model, dict) else {}]
    for i, ref in enumerate(panel.get("references") or []):
        if not isinstance(ref, dict):
            continue
        metrics: dict[str, Any] = ref["metrics"] if isinstance(ref.get("metrics"), dict) else ref
        columns.append(str(ref.get("name") or f"reference {i + 1}"))
        cells.append(metrics)
    keys: list[str] = []
    for column in cells:
        for key, value in column.items():
            if (
                key not in keys
                and key not in PANEL_STRUCTURED
                and (value is None or isinstance(value, dict | int | float))
            ):
                keys.append(key)
    if not keys:
        return None
    rows = [
        {"metric": PANEL_LABELS.get(k, k), "key": k, "cells": [fmt_interval(c.get(k)) for c in cells]} for k in keys
    ]
    return {"columns": columns, "rows": rows}


def audit_view(doc: dict[str, Any], prefix: str, thumbs: dict[str, str], thumb_note: str | None) -> dict[str, Any]:
    """Everything the template shows for one audit, computed from the (validated) JSON."""
    policy = doc.get("policy") or {}
    tau_max = policy.get("tau_max")
    tau_range = (float(policy.get("tau_min") or 0.0), math.inf if tau_max is None else float(tau_max))
    probes = []
    for i, (name, p) in enumerate(doc.get("probes", {}).items()):
        hist = p.get("u_minus_v_histogram")
        excess = decisive(p)[0] == "D"
        probes.append(
            {
                "name": name,
                "p": p,
                "excess": excess,
                "ratio_svg": (
                    plots.excess_plot(name, p, f"{prefix}r{i}", tau_range)
                    if excess
                    else plots.ratio_plot(name, p, f"{prefix}r{i}")
                ),
                "rates_svg": plots.rates_plot(name, p, f"{prefix}p{i}"),
                "hist_svg": plots.histogram_plot(name, hist, f"{prefix}h{i}") if hist else None,
            }
        )
    screening = [
        {"name": name, "s": s, "svg": plots.screening_plot(name, s, f"{prefix}s{i}")}
        for i, (name, s) in enumerate(doc.get("screening", {}).items())
    ]
    flagged = doc.get("flagged_samples") or []
    return {
        "doc": doc,
        "prefix": prefix,
        "headline": headline(doc["verdict"]),
        "probes": probes,
        "excess": [p["name"] for p in probes if p["excess"]],
        "screening": screening,
        "flagged": flagged[:200],
        "flagged_total": len(flagged),
        "thumbs": thumbs,
        "thumb_note": thumb_note,
        "panel": _panel(doc.get("panel")),
        "seed": seed_text(doc),
        "limits": doc.get("limits") or AUDIT_LIMITS,
    }


def seed_text(doc: dict[str, Any]) -> str:
    """The seed as a report shows it: the number, or the commitment of a secret one (never the secret)."""
    if doc.get("seed_commitment"):
        return f"secret (SHA-256 commitment {doc['seed_commitment']}; the auditor's seed file opens it)"
    return str(doc["provenance"]["seed"])


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, fmt_p=fmt_p, fmt_interval=fmt_interval, excess_row=excess_row)
    env.globals.update(headline=headline, decisive=decisive)
    return env


def _renderer_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("jinja2", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            pass
    return out


def render_html(
    doc: dict[str, Any],
    thumbs: dict[str, str] | None = None,
    thumb_note: str | None = None,
    after_thumbs: dict[str, str] | None = None,
) -> str:
    """``doc``: a validated audit or remediation document (see :func:`unlearn_audit.report.json.prepare`)."""
    from markupsafe import Markup

    env = _environment()
    if doc.get("kind") == "remediation":
        before = audit_view(doc["before"], "b", thumbs or {}, thumb_note)
        after = audit_view(doc["after"], "a", after_thumbs if after_thumbs is not None else thumbs or {}, thumb_note)
        context: dict[str, Any] = {"kind": "remediation", "rem": doc, "before": before, "after": after, "main": after}
    else:
        context = {"kind": "audit", "main": audit_view(doc, "m", thumbs or {}, thumb_note)}
    context["schema_version"] = SCHEMA_VERSION
    context["renderer"] = _renderer_versions()
    context["css"] = Markup(
        resources.files(__package__).joinpath("templates", "report.css").read_text(encoding="utf-8")
    )
    return env.get_template("report.html.j2").render(**context)


def write_html(doc: dict[str, Any], path: Path, **kwargs: Any) -> Path:
    path.write_text(render_html(doc, **kwargs), encoding="utf-8")
    return path
