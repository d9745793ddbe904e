"""The Markdown summary: for pull requests and tickets. Short, and every number traceable to the JSON."""

from __future__ import annotations

from typing import Any

from .html import PANEL_LABELS, PANEL_STRUCTURED, decisive, fmt, fmt_interval, fmt_p, headline, seed_text
from .json import AUDIT_LIMITS

MAX_FLAGGED = 10


def _escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _audit(doc: dict[str, Any], level: str = "##") -> list[str]:
    lines = [f"**{headline(doc['verdict'])}**", "", f"Reason: {doc['reason']}", "", f"_{doc['policy_text']}_", ""]
    model = doc["model"]
    lines += [
        f"- audited model: `{model['name']}` sha256 `{model['sha256'] or 'in memory'}`",
        f"- references: {len(doc['references'])} ({', '.join(r['name'] for r in doc['references']) or 'none: screening'})",
        f"- forget set: {doc['forget']['samples']} samples, `{doc['forget']['source']}`",
        *_remote(doc.get("remote")),
        "",
    ]
    if doc["probes"]:
        lines += [
            f"{level} Per-probe verdicts",
            "",
            "| probe | R pooled [CI] (D where a whole class was forgotten) | null band | verdict |",
            "|---|---|---|---|",
        ]
        for name, p in doc["probes"].items():
            band = p["null_band"]
            counted = "" if p["counts_toward_verdict"] else " (not counted)"
            lines.append(
                f"| {name} | {_decisive(p)} | [{fmt(band['lo'])}, {fmt(band['hi'])}] | "
                f"{p['verdict']['kind']}{counted} |"
            )
        lines.append("")
    for name, s in doc["screening"].items():
        lines.append(f"- screening {name}: R_proxy {fmt_interval(s['R_proxy_pooled'])} → {s['verdict']['kind']}")
    flagged = doc["flagged_samples"]
    lines += [f"{level} Flagged forget samples: {len(flagged)}", ""]
    if flagged:
        lines += ["| id | label | probes | u | v̄ | adjusted p |", "|---|---|---|---|---|---|"]
        for f in flagged[:MAX_FLAGGED]:
            lines.append(
                f"| `{_escape(f['id'])}` | {f['label']} | {', '.join(f['probes'])} | {fmt(f['u'], 1)} | "
                f"{fmt(f['v_bar'], 1)} | {fmt_p(f['p_adjusted'])} |"
            )
        if len(flagged) > MAX_FLAGGED:
            lines.append(f"| … {len(flagged) - MAX_FLAGGED} more in the JSON report | | | | | |")
        lines.append("")
    panel = doc.get("panel")
    if isinstance(panel, dict) and isinstance(panel.get("model"), dict) and panel["model"]:
        refs = [r for r in panel.get("references") or [] if isinstance(r, dict)]
        lines += [f"{level} Unlearning panel", ""]
        header = ["metric", "audited model", *[str(r.get("name") or f"reference {i + 1}") for i, r in enumerate(refs)]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for key, value in panel["model"].items():
            if key in PANEL_STRUCTURED:
                continue
            cells = [fmt_interval(value)] + [fmt_interval((r.get("metrics") or r).get(key)) for r in refs]
            lines.append(f"| {PANEL_LABELS.get(key, key)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _draws_auto(doc.get("draws_auto"), level)
    for note in doc.get("notes") or []:
        lines.append(f"> note: {note}")
    if doc.get("notes"):
        lines.append("")
    prov = doc["provenance"]
    lines += [
        "<details><summary>Provenance</summary>",
        "",
        f"- command: `{prov.get('command')}`",
        f"- seed {seed_text(doc)}, device {prov['device']}, {prov['time']['started']} → {prov['time']['finished']}",
        f"- {prov['tool']['name']} {prov['tool']['version']}; "
        + ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if k != "unlearn_audit"),
    ]
    for f in prov["files"]:
        lines.append(f"- {f['role']} `{f.get('path') or 'in memory'}`: sha256 `{f.get('sha256') or '—'}`")
    if doc.get("binding"):
        lines.append(f"- binding digest `{doc['binding']['digest']}` (verdict, files, policy, config, tool, seed)")
    lines += ["", "</details>", ""]
    limits = doc.get("limits") or AUDIT_LIMITS
    lines += ["**What this audit can and cannot prove.**", ""]
    lines += [f"- {limits[key]}" for key in ("pass_means", "findings_mean", "cannot_prove") if key in limits]
    lines.append("")
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    """``doc``: a validated audit or remediation document."""
    if doc.get("kind") == "remediation":
        before, after = doc["before"], doc["after"]
        ok = doc.get("success")
        lines = [
            f"# Remediation: {doc['method']} on `{before['model']['name']}`",
            "",
            f"**{'Succeeded' if ok else 'Did not succeed'}**: verdict {before['verdict']} → {after['verdict']}."
            + (f" {doc['reason']}" if doc.get("reason") else ""),
            "",
            "| | before | after |",
            "|---|---|---|",
            f"| verdict | {before['verdict']} | {after['verdict']} |",
        ]
        for name, p in after["probes"].items():
            b = before["probes"].get(name)
            stat, estimate = decisive(p)  # D where a whole class was forgotten
            b_text = "—" if b is None else _decisive(b, prefix=decisive(b)[0] != stat)
            lines.append(f"| {stat} pooled, {name} | {b_text} | {fmt_interval(estimate)} |")
        lines.append(f"| flagged samples | {len(before['flagged_samples'])} | {len(after['flagged_samples'])} |")
        for key in ("retain_acc", "test_acc"):
            entry = doc.get(key)
            if isinstance(entry, dict):
                lines.append(
                    f"| {PANEL_LABELS[key]} | {fmt_interval(entry.get('before'))} | {fmt_interval(entry.get('after'))} |"
                )
        if doc.get("hyperparameters"):
            lines += ["", "Hyper-parameters: " + ", ".join(f"`{k}={v}`" for k, v in doc["hyperparameters"].items())]
        lines += [
            "",
            "## After remediation",
            "",
            *_audit(after, "###"),
            "## Before remediation",
            "",
            *_audit(before, "###"),
        ]
        return "\n".join(lines).rstrip() + "\n"
    lines = [f"# Unlearning audit: `{doc['model']['name']}`", "", *_audit(doc)]
    return "\n".join(lines).rstrip() + "\n"


def _draws_auto(auto: dict[str, Any] | None, level: str) -> list[str]:
    """``--draws auto``: the pilot's variance split and the draws chosen, one row per probe."""
    if not auto:
        return []
    pilot = auto["pilot"]
    lines = [
        f"{level} Draws chosen by precision (--draws auto)",
        "",
        f"Pilot: {pilot['samples']} of {pilot['of']} forget samples; target: Monte-Carlo share at most "
        f"{fmt(100 * auto['target_share'], 0)} % of the statistic's variance.",
        "",
        "| probe | statistic | between | within / draw | draws | MC share | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in auto["probes"].items():
        if p["source"] == "override":
            lines.append(f"| {name} | — | — | — | {p['draws']} | — | set by --draws {name}=N |")
            continue
        note = {"min": f"clipped at the minimum {p['bounds'][0]}", "max": f"clipped at the maximum {p['bounds'][1]}"}
        lines.append(
            f"| {name} | {p['statistic']} | {fmt(p['between_variance'], 4)} | {fmt(p['within_variance_per_draw'], 4)} "
            f"| {p['draws']} | {fmt(100 * (p['mc_share'] or 0), 1)} % | {note.get(p['clipped'] or '', '')} |"
        )
    return [*lines, ""]


def _decisive(probe: dict[str, Any], prefix: bool = True) -> str:
    """The statistic that decided the probe's verdict: R, or ``D = …`` (p_m − p_ā) for a whole forgotten class."""
    stat, estimate = decisive(probe)
    return f"{'D = ' if stat == 'D' and prefix else ''}{fmt_interval(estimate)}"


def _remote(remote: dict[str, Any] | None) -> list[str]:
    """Served models: each endpoint and the queries it answered, and each probe's access mode."""
    if not remote:
        return []
    lines = []
    for e in remote["endpoints"]:
        limit = e.get("settings", {}).get("max_queries")
        lines.append(
            f"- served {e['role']}: `{e['endpoint']}` ({e['output_kind']}), {e['usage']['rows_sent']} queries sent"
            + (f" of at most {limit}" if limit else "")
            + "".join(f"; warning: {w['message']}" for w in e.get("warnings", []))
        )
    access = ", ".join(f"{name}: {mode}" for name, mode in remote.get("access", {}).items())
    via = f" (transfer probes crafted on `{remote['surrogate']}`)" if remote.get("surrogate") else ""
    lines.append(f"- probe access: {access}{via}; {remote['queries_used']} queries in all")
    return lines
