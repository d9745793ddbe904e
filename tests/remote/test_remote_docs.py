"""The Python snippet of docs/remote.md runs as written, against a fake endpoint standing in for the URL."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from tests.remote.fake_oip import FakeOIPServer

pytestmark = pytest.mark.timeout(60)


def test_the_docs_snippet_runs(monkeypatch, tmp_path, capsys):
    text = (REPO / "docs" / "remote.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    with FakeOIPServer(name="fmnist", input_shape=(1, 28, 28), token="t0ken") as server:
        code = snippet.replace("https://models.example:8443/v2/models/fmnist", server.url)
        code = code.replace('"reference_models/', f'"{REPO}/reference_models/')
        assert server.url in code and str(REPO) in code
        monkeypatch.setenv("AUDIT_TOKEN", "t0ken")
        monkeypatch.chdir(tmp_path)
        exec(compile(code, "docs/remote.md", "exec"), {})  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "'rows_sent': 500" in out and "'inconsistent': 0" in out  # one call: no re-checks yet
    assert (tmp_path / "audit-work" / "oip-answers.sqlite").exists()
