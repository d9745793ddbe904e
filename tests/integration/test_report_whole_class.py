"""The report of a whole-class audit (issue 13). The retrained references never learned the forgotten class, so
R = p_m / p_ā is undefined and the verdict tests the excess rate D = p_m − p_ā. The plot that shows R for other
audits must show D there, with its interval and null band, say why, and draw data rather than empty axes.

Real models: the digits scenario of tests/integration/test_forget_kinds.py (class 3 removed)."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest

from tests.integration.test_forget_kinds import CONFIG, _scenario
from unlearn_audit.audit import Audit
from unlearn_audit.report import write_report
from unlearn_audit.report.html import fmt
from unlearn_audit.report.plots import MAIN

pytestmark = pytest.mark.slow
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def docs():
    """JSON documents of two audits against retrains 2–4: the original (kept class 3) and an honest retrain."""
    original, retrains, forget = _scenario("whole-class")
    results = Audit(references=retrains[1:], forget=forget, config=CONFIG).run_many(
        {"original": original, "retrain": retrains[0]}
    )
    return {name: json.loads(result.to_json()) for name, result in results.items()}


def _figure(html: str, plot: str) -> str:
    start = html.index(f'data-plot="{plot}"')
    return html[html.index("<svg", start) : html.index("</svg>", start) + len("</svg>")]


def _main_series(svg: str) -> tuple[int, int]:
    """(vertices of its line, markers) of the series the plot exists to show (plots.MAIN): (0, 0) when the plot
    drew only axes and labels, as an R plot of NaN values does."""
    root = ElementTree.fromstring(svg)
    group = next((g for g in root.iter(f"{SVG}g") if g.get("id", "").endswith(f"-{MAIN}")), None)
    assert group is not None, "no main series in the plot"
    line = group.find(f"{SVG}path")
    vertices = len(re.findall(r"[ML] [-\d.]+ [-\d.]+", line.get("d", ""))) if line is not None else 0
    return vertices, len(list(group.iter(f"{SVG}use")))


@pytest.mark.parametrize("name, verdict", [("original", "residual_knowledge"), ("retrain", "pass")])
def test_whole_class_report_plots_the_excess_rate(docs, name, verdict, tmp_path):
    doc = docs[name]
    assert doc["verdict"] == verdict
    paths = write_report(doc, tmp_path, thumbnails=False)
    html = paths["html"].read_text()
    assert "Excess recognition rate D against τ (R is undefined here)" in html
    assert 'id="excess-note"' in html and "Why D and not R" in html and "Where a whole class was forgotten" in html
    for probe_name, probe in doc["probes"].items():
        assert probe["statistic"] == "excess" and probe["pooled"]["value"] is None  # R undefined: nothing to plot
        svg = _figure(html, f"ratio-{probe_name}")
        assert "excess rate D against tau" in svg and "R against tau" not in svg
        n_tau = len(probe["taus"])
        assert _main_series(svg) == (n_tau, n_tau)  # D drawn at every τ: a line through n_tau markers
        # the per-τ table shows D = p_m − p_ā in place of the undefined R
        table = html[html.index(f"<h3>{probe_name}</h3>") :]
        table = table[: table.index("</table>")]
        assert "D = p<sub>m</sub> − p<sub>ā</sub>" in table and "R [95% CI]" not in table
        shown = re.findall(r"<tr><td>[\d.]+</td><td>([^<]*)</td>", table)
        p_m, p_a = [r["p_m"] for r in probe["taus"]], [r["p_a"] for r in probe["taus"]]
        assert shown == [
            f"{fmt(m['value'] - a['value'])} [{fmt(m['lo'] - a['hi'])}, {fmt(m['hi'] - a['lo'])}]"
            for m, a in zip(p_m, p_a, strict=True)
        ]
    # the other two plots per probe draw data too
    for probe_name in doc["probes"]:
        assert _main_series(_figure(html, f"rates-{probe_name}"))[0] > 0


def test_partial_class_report_still_plots_r(report_run):
    """The bundled audit (half a class forgotten) keeps its R plot: D appears only where R is undefined."""
    html = (report_run.report_dir / "report.html").read_text()
    doc = json.loads(report_run.json_path.read_text())
    assert "excess-note" not in html and "Residual-knowledge ratio R<sub>τ</sub> against τ" in html
    for probe_name, probe in doc["probes"].items():
        assert probe["statistic"] == "R"
        svg = _figure(html, f"ratio-{probe_name}")
        assert "R against tau" in svg
        assert _main_series(svg) == (len(probe["taus"]), len(probe["taus"]))


def test_whole_class_remediation_tables_name_d(docs, tmp_path):
    before, after = docs["original"], docs["retrain"]
    rem = {
        "kind": "remediation",
        "schema_version": before["schema_version"],
        "method": "retrain",
        "before": before,
        "after": after,
        "success": True,
        "reason": "hand-built for the test: the honest retrain stands in for a remediated model",
    }
    paths = write_report(rem, tmp_path, thumbnails=False)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    for probe_name, probe in after["probes"].items():
        b, a = before["probes"][probe_name]["excess_pooled"], probe["excess_pooled"]
        row = f"D pooled, {probe_name}"
        assert row in html and "R pooled, " not in html
        cells = html[html.index(row) :]
        cells = cells[: cells.index("</tr>")]
        assert fmt(b["value"]) in cells and fmt(a["value"]) in cells
        assert f"| {row} | {fmt(b['value'])} [" in md
    assert html.count('class="plot-svg"') == 2 * 3 * len(after["probes"])
    assert len(re.findall(r'aria-label="[^"]*excess rate D against tau', html)) == 2 * len(after["probes"])
