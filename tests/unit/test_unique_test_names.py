"""pytest collects test modules by basename (rootdir-relative imports without packages): two test files with the
same name in different folders break collection on a clean checkout."""

from __future__ import annotations

from collections import Counter

from tests.conftest import REPO


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
