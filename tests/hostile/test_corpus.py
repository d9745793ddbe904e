"""Every file in the hostile corpus gets a clean one-line error and exit code 2 (or loads, if it is merely odd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FMNIST, assert_one_line_error

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED = json.loads((CORPUS / "EXPECTED.json").read_text())
QUICK = ["--probes", "gaussian", "--draws", "2", "--taus", "0,0.03", "--bootstrap", "200"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name, cli, tmp_path):
    case = EXPECTED[name]
    path = CORPUS / name
    if case["kind"] == "model":
        result = cli("info", path)
    elif case["kind"] == "model-output":
        report = tmp_path / "report.json"
        result = cli(
            "check",
            path,
            "--forget",
            FMNIST / "forget.npz",
            "--reference",
            FMNIST / "retrain-2.safetensors",
            *QUICK,
            "--json",
            report,
        )
        assert not report.exists(), "a failed audit must not leave a report behind"
    elif case["kind"] == "tabular-data":
        result = cli("info", CORPUS / "tabular_model.safetensors", "--data", path)
    else:
        result = cli("info", FMNIST / "original.safetensors", "--data", path)
    if case["fragment"] == "ok":
        assert result.code == 0, result.err
    else:
        assert_one_line_error(result, case["fragment"])


def test_a_million_rows_is_refused(cli, tmp_path):
    big = tmp_path / "million.csv"
    with big.open("w") as handle:
        handle.write("# dataset=fashion-mnist:test\nindex,label\n")
        handle.write("1,2\n" * 1_000_001)
    assert_one_line_error(
        cli("info", FMNIST / "original.safetensors", "--data", big), "more than 500000 rows", "--max-rows"
    )


def test_corpus_is_complete():
    files = {p.name for p in CORPUS.iterdir() if p.is_file() or p.is_symlink()} - {"EXPECTED.json", "escape.png"}
    assert files == set(EXPECTED), files ^ set(EXPECTED)
