"""Open a real HTML report in headless Chromium (Debian's ``chromium``): it loads with no console errors and no
network requests, every plot has a non-zero size, the verdict is visible at the top, and a screenshot is kept.

Skipped when Chromium is missing, unless ``UNLEARN_AUDIT_REQUIRE_BROWSER=1`` (CI sets it), where it fails."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import Chromium, PageReport, file_url, find_chromium

pytestmark = pytest.mark.browser

CHECKS = """JSON.stringify((() => {
  const verdict = document.getElementById('verdict-sentence');
  const box = verdict ? verdict.getBoundingClientRect() : null;
  const style = verdict ? getComputedStyle(verdict) : null;
  const plots = [...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {name: f.dataset.plot, width: r.width, height: r.height,
            marks: svg ? svg.querySelectorAll('path, use').length : 0};
  });
  const images = [...document.querySelectorAll('img')].map(i => ({ok: i.complete && i.naturalWidth > 0,
                                                                  width: i.getBoundingClientRect().width}));
  return {
    title: document.title,
    verdict: verdict ? verdict.innerText : null,
    verdictVisible: !!box && box.width > 0 && box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight
                    && style.visibility === 'visible' && style.display !== 'none',
    plots, images,
    sha: (document.getElementById('model-sha256') || {}).innerText || '',
  };
})())"""


@pytest.fixture(scope="module")
def chromium():
    binary = find_chromium()
    if binary is None:
        if os.environ.get("UNLEARN_AUDIT_REQUIRE_BROWSER") == "1":
            pytest.fail("UNLEARN_AUDIT_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium); set UNLEARN_AUDIT_REQUIRE_BROWSER=1 to fail")
    with Chromium(binary, width=1200, height=900) as browser:
        yield browser


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    where = os.environ.get("UNLEARN_AUDIT_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def problems(page: PageReport, expected_plots: int, headline: str, sha: str) -> list[str]:
    out = [f"console: {c}" for c in page.errors]
    out += [f"network request: {u}" for u in page.requests if not u.startswith(("file:", "data:"))]
    checks: dict[str, Any] = json.loads(page.checks) if page.checks else {}
    if not checks:
        return [*out, "the page checks did not run"]
    if not checks["verdictVisible"]:
        out.append("verdict not visible in the first screen")
    if headline not in (checks["verdict"] or ""):
        out.append(f"verdict text {checks['verdict']!r}")
    if sha not in checks["sha"]:
        out.append("model sha256 not shown")
    if len(checks["plots"]) != expected_plots:
        out.append(f"{len(checks['plots'])} plots, expected {expected_plots}")
    for plot in checks["plots"]:
        if plot["width"] <= 0 or plot["height"] <= 0 or plot["marks"] < 10:
            out.append(f"plot {plot['name']} empty or zero-size: {plot}")
    out += [f"image {i} not rendered" for i, img in enumerate(checks["images"]) if not img["ok"] or img["width"] <= 0]
    return out


def test_report_opens_in_chromium(chromium, report_run, artifacts):
    html = report_run.report_dir / "report.html"
    doc = json.loads(report_run.json_path.read_text())
    page = chromium.inspect(file_url(html), CHECKS)
    shot = artifacts / "report-screenshot.png"
    shot.write_bytes(page.screenshot)
    print(f"screenshot: {shot}")
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 10_000
    expected = 3 * len(doc["probes"])
    assert problems(page, expected, "Residual knowledge:", doc["model"]["sha256"]) == []
    assert len(json.loads(page.checks)["images"]) == min(100, len(doc["flagged_samples"]))


def test_checks_catch_a_broken_report(chromium, report_run, tmp_path):
    """The same checks on deliberately broken copies must fail: the browser test can fail."""
    doc = json.loads(report_run.json_path.read_text())
    html = (report_run.report_dir / "report.html").read_text()
    first_svg = html.index("<svg")
    broken = {  # name: (broken page, what the checks must say)
        "script": (html.replace("</main>", "<script>console.error('boom')</script></main>"), "console"),
        "fetch": (html.replace("</main>", '<img src="https://example.invalid/x.png" alt=""></main>'), "console"),
        "zero-size plot": (html[:first_svg] + '<svg style="display:none" ' + html[first_svg + 5 :], "zero-size"),
        "missing plot": (html.replace('<figure class="plot"', '<figure class="gone"', 1), "plots, expected"),
        "hidden verdict": (
            html.replace('id="verdict-sentence"', 'id="verdict-sentence" style="visibility:hidden"'),
            "verdict not visible",
        ),
    }
    for name, (text, expected) in broken.items():
        path = tmp_path / f"{name.replace(' ', '-')}.html"
        path.write_text(text)
        page = chromium.inspect(file_url(path), CHECKS)
        found = problems(page, 3 * len(doc["probes"]), "Residual knowledge:", doc["model"]["sha256"])
        assert any(expected in f for f in found), f"{name}: the checks missed it ({found})"
