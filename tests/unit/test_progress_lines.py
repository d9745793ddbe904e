"""Progress for pipes and CI logs (issue 20): the plain-line renderer, its interval, the log levels of -v and
--quiet, and progress that advances per batch inside a probe."""

from __future__ import annotations

import logging
import re
import time

import pytest

from tests.conftest import DIGITS, assert_one_line_error
from unlearn_audit import console
from unlearn_audit.errors import ConfigError
from unlearn_audit.progress import cache_event, format_seconds, milestone, phase

ANSI = re.compile(r"\x1b\[")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def line_progress(interval: float = 10.0) -> tuple[console.LineProgress, list[str], FakeClock]:
    lines: list[str] = []
    clock = FakeClock()
    return console.LineProgress(interval, write=lines.append, clock=clock), lines, clock


def test_lines_are_throttled_to_the_interval_and_name_the_open_tasks():
    progress, lines, clock = line_progress(10.0)
    outer = progress.start("remediation trial 2 of at most 10", None)
    assert lines == ["progress [0.0s] remediation trial 2 of at most 10: 0.0s in phase"]  # the first line at once
    inner = progress.start("pgd", 500)
    for _ in range(9):  # moves, but within the interval: no line
        clock.now += 1.0
        inner.advance(10)
    assert len(lines) == 1
    clock.now += 1.0
    inner.advance(10)  # 100/500 after 10 s: 10/s, 40 s left
    assert lines[-1] == (
        "progress [0:10] remediation trial 2 of at most 10 > pgd: 100/500 (20%), 10/s, eta 0:40, 0:10 in phase"
    )
    inner.close()
    clock.now += 10.0
    progress.emit()
    assert lines[-1] == "progress [0:20] remediation trial 2 of at most 10: 0:20 in phase"  # back to the outer task
    outer.close()
    progress.emit()
    assert lines[-1] == "progress [0:20] working (after remediation trial 2 of at most 10)"
    assert not any(ANSI.search(line) for line in lines)


def test_a_task_that_has_not_moved_shows_no_rate_and_an_unknown_eta():
    progress, lines, clock = line_progress()
    task = progress.start("bootstrap and analysis", 3)
    assert lines[-1] == "progress [0.0s] bootstrap and analysis: 0/3 (0%), eta unknown, 0.0s in phase"
    clock.now += 120.0
    task.advance(1)  # slow steps read as seconds each, fractions of small totals keep a decimal
    task.advance(0.5)
    task.update(info="loss 0.120")
    progress.emit()
    assert (
        lines[-1]
        == "progress [2:00] bootstrap and analysis: 1.5/3 (50%), 80s each, eta 2:00, 2:00 in phase, loss 0.120"
    )


def test_the_heartbeat_prints_while_one_long_step_runs():
    lines: list[str] = []
    with console.LineProgress(0.05, write=lines.append) as progress:
        task = progress.start("pgd", 10)  # one line at once, then nothing moves for 0.4 s
        time.sleep(0.4)
        task.close()
    assert len(lines) >= 4, lines
    assert all(line.endswith("in phase") and "pgd: 0/10" in line for line in lines)


def test_format_seconds():
    assert [format_seconds(s) for s in (0.04, 9.94, 10, 75.3, 3725)] == ["0.0s", "9.9s", "0:10", "1:15", "1:02:05"]


def test_the_interval_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(console.INTERVAL_ENV, raising=False)
    assert console.progress_interval(None) == console.DEFAULT_PROGRESS_INTERVAL == 10
    monkeypatch.setenv(console.INTERVAL_ENV, "30")
    assert console.progress_interval(None) == 30 and console.progress_interval(0.5) == 0.5
    for bad in ("soon", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(console.INTERVAL_ENV, bad)
        with pytest.raises(ConfigError, match=f"UNLEARN_AUDIT_PROGRESS_INTERVAL='{bad}'"):
            console.progress_interval(None)
    with pytest.raises(ConfigError, match="--progress-interval 0"):
        console.progress_interval(0.0)


def test_which_renderer(monkeypatch):
    """Not a terminal (pytest captures stderr): lines; NO_PROGRESS or --quiet: nothing at all."""
    monkeypatch.delenv(console.NO_PROGRESS_ENV, raising=False)
    assert isinstance(console.progress_display(interval=2), console.LineProgress)
    assert console.progress_display(quiet=True).bar.disable
    assert console.progress_display(enabled=False).bar.disable
    monkeypatch.setenv(console.NO_PROGRESS_ENV, "1")
    assert console.progress_display().bar.disable  # keeps its meaning: no progress display, bars or lines


def emit_all(logger: logging.Logger) -> None:
    logger.debug("a debug detail")
    logger.info("gaussian: done in 1.0s")
    milestone(logger, "remediation trial %d/1: verdict pass", 1)
    logger.warning("a warning")


@pytest.mark.parametrize(
    ("verbose", "quiet", "shown"),
    [
        (False, False, ["info: remediation trial 1/1: verdict pass", "warning: a warning"]),
        (False, True, ["warning: a warning"]),
        (
            True,
            False,
            [
                "debug: a debug detail",
                "info: gaussian: done in 1.0s",
                "info: remediation trial 1/1: verdict pass",
                "warning: a warning",
            ],
        ),
    ],
)
def test_log_levels_of_verbose_and_quiet(verbose, quiet, shown, capsys):
    console.configure_logging(verbose, quiet)
    try:
        emit_all(logging.getLogger("unlearn_audit.remediation.verify"))
    finally:
        console.configure_logging(False)
    assert capsys.readouterr().err.splitlines() == shown


def test_phase_logs_start_end_and_duration_and_closes_its_task(caplog):
    progress, lines, clock = line_progress()
    logger = logging.getLogger("tests.phase")
    with caplog.at_level(logging.INFO, logger="tests.phase"):
        with phase(progress, "pgd", 10, logger=logger) as task:
            task.advance(10)
        with pytest.raises(RuntimeError), phase(progress, "fgsm", 10, logger=logger):
            raise RuntimeError("boom")
        cache_event(logger, "work directory", True, "pgd counts, samples 0-256")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "pgd: started" and re.fullmatch(r"pgd: done in \d+\.\ds", messages[1])
    assert messages[2] == "fgsm: started" and messages[3].startswith("fgsm: stopped after")
    assert messages[4] == "cache hit (work directory): pgd counts, samples 0-256"
    progress.emit()
    assert lines[-1] == "progress [0.0s] working (after fgsm)"  # both tasks closed


def test_bad_progress_options_fail_before_any_work(cli):
    args = ["check", DIGITS / "gd.safetensors", "--forget", DIGITS / "forget.csv"]
    assert_one_line_error(cli(*args, "--progress-interval", "0"), "--progress-interval 0", "> 0")
    assert_one_line_error(cli(*args, "--quiet", "-v"), "--quiet and --verbose")


class Recorder:
    def __init__(self) -> None:
        self.tasks: list[list[float]] = []

    def start(self, description: str, total: float | None) -> Recorder:
        self.tasks.append([])
        return self

    def advance(self, amount: float = 1) -> None:
        self.tasks[-1].append(amount)

    def update(self, *, description: str | None = None, info: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.mark.parametrize("probe_name", ["gaussian", "fgsm", "pgd"])
def test_a_probe_advances_per_batch_not_per_chunk(probe_name):
    """The PGD bar sat at 0/500 for 33 s: the engine advanced once per chunk. Now every batch of rows moves it,
    in forget samples, and the advances add up to the samples probed."""
    from unlearn_audit.io.models import load_model
    from unlearn_audit.io.samples import load_samples
    from unlearn_audit.probes import make_probes
    from unlearn_audit.probes.engine import Engine, EngineConfig

    models = [load_model(DIGITS / name, device="cpu") for name in ("gd.safetensors", "retrain-1.safetensors")]
    forget = load_samples(DIGITS / "forget.csv", num_classes=10, input_shape=models[0].meta.input_shape)
    recorder = Recorder()
    config = EngineConfig(taus=(0.0, 4 / 255, 8 / 255), draws=4, batch_size=32, device="cpu", precision="fp32")
    engine = Engine(models, forget, config, progress=recorder)
    engine.run(make_probes([probe_name])[0])
    (advances,) = recorder.tasks
    assert len(advances) >= 4  # several batches in the one chunk (chunk_size 128 > 60 samples): it moves within
    assert all(0 < step < len(forget) for step in advances)
    assert sum(advances) == pytest.approx(len(forget))


def test_terminal_bars_keep_counted_rows_and_drop_rows_that_only_held_others(monkeypatch):
    import io

    terminal = type(console.stderr)(file=io.StringIO(), force_terminal=True, width=100)  # a rich Console
    monkeypatch.setattr(console, "stderr", terminal)
    with console.RichProgress(enabled=True) as progress:
        with phase(progress, "audit of gd"):  # no total, never advanced: a container of the probe rows
            task = progress.start("pgd", 10)
            task.advance(10)
            task.close()
        steps = progress.start("rurk", None)  # no total but counted: keeps its row, total = steps done
        steps.advance(3)
        steps.close()
        rows = {t.description: t.total for t in progress.bar.tasks}
    assert rows == {"pgd": 10, "rurk": 3}
