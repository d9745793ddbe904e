"""Numbers the simulation tests measure (issue 16: "the measured false-finding rate and coverage in their output"),
printed in the terminal summary of every run that collects them, without ``-s``."""

from __future__ import annotations

import pytest

SIMULATION_LINES: list[str] = []


@pytest.fixture
def simulation_report():  # noqa: ANN201 - a callable that records one line
    return SIMULATION_LINES.append


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's TerminalReporter
    if SIMULATION_LINES:
        terminalreporter.write_sep("=", "sequential design simulation (tests/unit/test_sequential_simulation.py)")
        for line in SIMULATION_LINES:
            terminalreporter.write_line(line)
