"""The README's Python examples run as written (from a folder holding the bundled reference models)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REFERENCE_MODELS, REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    (tmp_path / "reference_models").symlink_to(REFERENCE_MODELS)
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PYTHONPATH": str(REPO),
            "UNLEARN_AUDIT_NO_PROGRESS": "1",
            "OMP_NUM_THREADS": "2",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
