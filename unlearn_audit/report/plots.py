"""Plots for the HTML report: matplotlib figures rendered to inline SVG strings (no files, no fonts fetched).

Each function takes plain values from the JSON report and returns ``<svg ...>...</svg>`` markup. The output is
deterministic: the SVG id salt is fixed per figure and the date metadata is dropped.

The series a plot exists to show carries the SVG id ``<salt>-data-main`` (matplotlib's ``gid``), so a check can
tell a plot that drew its data from one that drew only axes and labels (tests/browser/).
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

_COLOURS = {
    "R": "#1f5fa8",
    "D": "#1f5fa8",
    "pooled": "#0b3d6e",
    "band": "#9a9a9a",
    "p_m": "#1f5fa8",
    "p_a": "#c2571a",
    "dis": "#6b3fa0",
    "hist": "#1f5fa8",
}

MAIN = "data-main"
"""SVG id (before the per-figure salt) of the series each plot exists to show."""


def _figure(width: float = 6.0, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _svg(fig: Any, salt: str, label: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.tight_layout()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Title": label})
    text = buffer.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    # Several SVGs share one HTML document: make every id (glyphs, clip paths, markers) unique to this figure.
    ids = set(re.findall(r'id="([^"]+)"', svg))
    svg = re.sub(
        r'(id="|#)([A-Za-z_][\w.:-]*)(?=["\)])',
        lambda m: f"{m.group(1)}{salt}-{m.group(2)}" if m.group(2) in ids else m.group(0),
        svg,
    )
    # Scale with the page: keep the viewBox, let CSS size the element; name it for screen readers.
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" class="plot-svg" ', 1)
    return svg


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _val(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _taus(rows: list[dict[str, Any]]) -> list[float]:
    return [float(r["tau"]) for r in rows]


def ratio_plot(name: str, probe: dict[str, Any], salt: str) -> str:
    """R_τ against τ with its CI band, and the null band (range of honest retrains) per τ."""
    rows = probe["taus"]
    taus = _taus(rows)
    fig, ax = _figure()
    lo = [_val(r["R_ci"][0]) for r in rows]
    hi = [_val(r["R_ci"][1]) for r in rows]
    ax.fill_between(taus, lo, hi, color=_COLOURS["R"], alpha=0.2, linewidth=0, label="R 95% CI")
    ax.plot(taus, [_val(r["R"]) for r in rows], "o-", color=_COLOURS["R"], label="R (audited / retrained)", gid=MAIN)
    band_rows = [r.get("null_band") for r in rows]
    if any(b for b in band_rows):
        blo = [_val(b["lo"]) if b else math.nan for b in band_rows]
        bhi = [_val(b["hi"]) if b else math.nan for b in band_rows]
        ax.fill_between(taus, blo, bhi, color=_COLOURS["band"], alpha=0.25, hatch="//", linewidth=0, label="null band")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("τ (neighbourhood size)")
    ax.set_ylabel("R")
    ax.set_title(f"{name}: residual-knowledge ratio R_τ")
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, salt, f"{name}: R against tau with confidence band and null band")


def excess_interval(row: dict[str, Any]) -> tuple[float, float]:
    """The range of the per-τ excess rate ``D_τ = p_m − p_ā`` that the report's own p_m and p_ā intervals allow:
    ``[p_m.lo − p_ā.hi, p_m.hi − p_ā.lo]``. The JSON carries no per-τ bootstrap of D (the verdict's pooled D has
    one), so this is the honest interval the report can draw: both intervals hold together with probability at
    least ``2·level − 1`` (union bound), and where a whole class was forgotten p_ā and its interval are close
    to 0, so the range is essentially the p_m interval."""
    p_m, p_a = row["p_m"], row["p_a"]
    return _val(p_m["lo"]) - _val(p_a["hi"]), _val(p_m["hi"]) - _val(p_a["lo"])


def excess_plot(name: str, probe: dict[str, Any], salt: str, tau_range: tuple[float, float] | None = None) -> str:
    """Whole forgotten class (``probe["statistic"] == "excess"``): R is undefined because the retrained references
    never recognise the class, so plot the statistic the verdict tested, the excess recognition rate
    ``D = p_m − p_ā``: per τ with the range its p_m and p_ā intervals allow, pooled over the verdict's τ range with its CI, and
    the null band honest retrains show for the pooled D."""
    rows = probe["taus"]
    taus = _taus(rows)
    fig, ax = _figure()
    intervals = [excess_interval(r) for r in rows]
    level = rows[0]["p_m"].get("level") if rows else None
    ax.fill_between(
        taus,
        [lo for lo, _ in intervals],
        [hi for _, hi in intervals],
        color=_COLOURS["D"],
        alpha=0.2,
        linewidth=0,
        label="D_τ range allowed by the p_m, p_ā " + (f"{float(level):.0%} CIs" if level else "CIs"),
    )
    ax.plot(
        taus,
        [_val(r["p_m"]["value"]) - _val(r["p_a"]["value"]) for r in rows],
        "o-",
        color=_COLOURS["D"],
        label="D_τ = p_m − p_ā",
        gid=MAIN,
    )
    lo_tau, hi_tau = min(taus), max(taus)
    if tau_range is not None:
        lo_tau, hi_tau = max(lo_tau, tau_range[0]), min(hi_tau, tau_range[1])
    band = probe.get("null_band") or {}
    if band.get("lo") is not None and band.get("hi") is not None:
        ax.axhspan(
            float(band["lo"]),
            float(band["hi"]),
            color=_COLOURS["band"],
            alpha=0.25,
            hatch="//",
            linewidth=0,
            label="null band (pooled D of honest retrains)",
        )
    pooled = probe.get("excess_pooled") or {}
    if pooled.get("value") is not None and lo_tau <= hi_tau:
        value = float(pooled["value"])
        lo, hi = _val(pooled.get("lo")), _val(pooled.get("hi"))
        pooled_level = pooled.get("level")
        label = "D pooled over the verdict's τ range" + (f", {float(pooled_level):.1%} CI" if pooled_level else "")
        if hi_tau > lo_tau:
            ax.fill_between([lo_tau, hi_tau], [lo, lo], [hi, hi], color=_COLOURS["pooled"], alpha=0.15, linewidth=0)
            ax.plot([lo_tau, hi_tau], [value, value], "--", color=_COLOURS["pooled"], label=label)
        else:  # one τ counts: a point with its interval
            ax.errorbar(
                [lo_tau], [value], yerr=[[value - lo], [hi - value]], fmt="D", color=_COLOURS["pooled"], label=label
            )
    ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("τ (neighbourhood size)")
    ax.set_ylabel("D = p_m − p_ā")
    ax.set_title(f"{name}: excess recognition rate D_τ (R undefined)", fontsize=11)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig, salt, f"{name}: excess rate D against tau with interval, pooled D and null band")


def rates_plot(name: str, probe: dict[str, Any], salt: str) -> str:
    """p_m (audited model) and p_a (retrained references) with CIs; disagreement with its Fréchet bounds."""
    rows = probe["taus"]
    taus = _taus(rows)
    fig, ax = _figure()
    for key, label in (("p_m", "p_m audited model"), ("p_a", "p_a retrained references")):
        ax.fill_between(
            taus,
            [_val(r[key]["lo"]) for r in rows],
            [_val(r[key]["hi"]) for r in rows],
            color=_COLOURS[key],
            alpha=0.2,
            linewidth=0,
        )
        ax.plot(
            taus,
            [_val(r[key]["value"]) for r in rows],
            "o-",
            color=_COLOURS[key],
            label=label,
            gid=MAIN if key == "p_m" else None,
        )
    ax.plot(taus, [_val(r["disagreement"]["value"]) for r in rows], "s--", color=_COLOURS["dis"], label="disagreement")
    ax.fill_between(
        taus,
        [_val(r["bounds"]["lower"]["value"]) for r in rows],
        [_val(r["bounds"]["upper"]["value"]) for r in rows],
        color=_COLOURS["dis"],
        alpha=0.12,
        linewidth=0,
        label="disagreement bounds",
    )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (neighbourhood size)")
    ax.set_ylabel("rate")
    ax.set_title(f"{name}: recognition rates and disagreement")
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, salt, f"{name}: p_m and p_a against tau, disagreement and bounds")


def histogram_plot(name: str, histogram: dict[str, Any], salt: str) -> str:
    """Histogram of per-sample u − v̄ (audited-model hits minus the references' mean hits)."""
    edges = [float(e) for e in histogram["edges"]]
    counts = [int(c) for c in histogram["counts"]]
    fig, ax = _figure(6.0, 3.0)
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    bars = ax.bar(edges[:-1], counts, width=widths, align="edge", color=_COLOURS["hist"], alpha=0.8, edgecolor="white")
    for i, bar in enumerate(bars):
        bar.set_gid(f"{MAIN}-{i}")
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("u − v̄ per forget sample (positive: the audited model recognises it more)")
    ax.set_ylabel("samples")
    ax.set_title(f"{name}: per-sample u − v̄")
    return _svg(fig, salt, f"{name}: histogram of per-sample u minus v bar")


def screening_plot(name: str, screening: dict[str, Any], salt: str) -> str:
    """Reference-free screening: R_proxy against τ with its CI and the split-half band."""
    rows = screening["taus"]
    taus = _taus(rows)
    fig, ax = _figure()
    ax.fill_between(
        taus,
        [_val(r["R_proxy"]["lo"]) for r in rows],
        [_val(r["R_proxy"]["hi"]) for r in rows],
        color=_COLOURS["R"],
        alpha=0.2,
        linewidth=0,
    )
    ax.plot(taus, [_val(r["R_proxy"]["value"]) for r in rows], "o-", color=_COLOURS["R"], label="R_proxy", gid=MAIN)
    band = screening.get("null_band") or {}
    if band.get("lo") is not None and band.get("hi") is not None:
        ax.axhspan(float(band["lo"]), float(band["hi"]), color=_COLOURS["band"], alpha=0.25, label="split-half band")
    ax.set_xlabel("τ (neighbourhood size)")
    ax.set_ylabel("R_proxy")
    ax.set_title(f"{name}: screening ratio (forget vs holdout)")
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, salt, f"{name}: screening ratio against tau")
