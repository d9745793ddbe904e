"""Session fixtures: the two models tuned to beat the audit, built once (tests/adversary/tuned.py)."""

from __future__ import annotations

import pytest

from tests.adversary.tuned import Tuned, build


@pytest.fixture(scope="session")
def tuned() -> Tuned:
    return build()
