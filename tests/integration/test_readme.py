"""The README's Python examples run as written (from a folder holding the bundled reference models)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REFERENCE_MODELS, REPO, run_python

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    (tmp_path / "reference_models").symlink_to(REFERENCE_MODELS)
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    done = run_python(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
