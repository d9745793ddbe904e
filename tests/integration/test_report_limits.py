"""Every report says what an audit can and cannot prove (issue 17): the JSON's ``limits``, and a section in the
HTML and the Markdown, also for reports written before the field existed."""

from __future__ import annotations

import json

import pytest

from unlearn_audit.report import render
from unlearn_audit.report.json import AUDIT_LIMITS


def test_json_carries_the_limits(report_run):
    doc = json.loads(report_run.json_path.read_text())
    assert doc["limits"] == AUDIT_LIMITS
    assert "Thudi" in doc["limits"]["cannot_prove"] and "Zhang" in doc["limits"]["cannot_prove"]
    assert "these retrained references" in doc["limits"]["pass_means"]


@pytest.mark.parametrize(
    "fmt, heading", [("html", 'id="what-an-audit-proves"'), ("md", "What this audit can and cannot prove")]
)
@pytest.mark.parametrize("with_field", [True, False])
def test_reports_show_what_an_audit_can_and_cannot_prove(report_run, fmt, heading, with_field):
    doc = json.loads(report_run.json_path.read_text())
    if not with_field:
        doc.pop("limits")  # a report written before the field: the renderers fall back to the fixed text
    text = render(doc, fmt, thumbnails=False)
    assert heading in text
    section = text[text.index(heading) :]
    for key in ("pass_means", "findings_mean"):
        assert AUDIT_LIMITS[key].split(":")[0] in section
    assert "Verification of Machine Unlearning is Fragile" in section and "forging" in section
