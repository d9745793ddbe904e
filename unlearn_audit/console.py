"""The only module that imports rich (a ruff rule enforces it). Rendering for the CLI: tables, progress
bars, warnings and one-line errors."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .errors import ConfigError
from .progress import MILESTONE, format_seconds

# Wide when piped to a file or CI log (rich would assume 80 columns); never turn ":train:" into an emoji.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
stdout = Console(highlight=False, soft_wrap=False, emoji=False, width=_WIDTH)
stderr = Console(stderr=True, highlight=False, emoji=False)


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Library log records on stderr: warnings and errors always; milestones (a remediation trial's outcome)
    unless ``quiet``; every ``INFO``/``DEBUG`` record (phases, cache, precision) with ``verbose``."""
    if verbose and quiet:
        raise ConfigError("--quiet and --verbose contradict each other; give one of them")
    root = logging.getLogger("unlearn_audit")
    root.handlers.clear()
    handler = _ConsoleHandler()
    if not verbose:
        handler.addFilter(lambda record: record.levelno >= logging.WARNING or bool(getattr(record, MILESTONE, False)))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    root.propagate = False


class _ConsoleHandler(logging.Handler):
    """Library log records as one-line ``warning:`` / ``info:`` messages on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            error(message)
        elif record.levelno >= logging.WARNING:
            warn(message)
        else:
            stderr.print(f"[dim]{record.levelname.lower()}:[/] {escape(message)}", markup=True, soft_wrap=True)


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", markup=True, soft_wrap=True)


def say(message: str = "", *, style: str | None = None, markup: bool = True) -> None:
    """Print a line; ``markup=False`` for text from data (ids, file names, reasons)."""
    stdout.print(message, style=style, markup=markup, soft_wrap=True)


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, justify_right: bool = True
) -> None:
    tbl = Table(title=title, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        tbl.add_column(col, justify="left" if i == 0 or not justify_right else "right", no_wrap=True)
    for row in rows:
        tbl.add_row(*[Text(str(c)) for c in row])
    stdout.print(tbl)


def key_values(title: str, items: Iterable[tuple[str, Any]]) -> None:
    tbl = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    tbl.add_column("key", style="bold")
    tbl.add_column("value", overflow="fold")
    for key, value in items:
        tbl.add_row(Text(key), Text(str(value)))
    stdout.print(tbl)


class _RichTask:
    def __init__(self, owner: RichProgress, task_id: int) -> None:
        self._owner = owner
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        self._owner.bar.advance(self._id, amount)  # type: ignore[arg-type]

    def update(self, *, description: str | None = None, info: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if description is not None:
            kwargs["description"] = description
        if info is not None:
            kwargs["info"] = info
        self._owner.bar.update(self._id, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        task = self._owner.bar.tasks[self._owner.index(self._id)]
        if task.total is None and not task.completed:  # a phase that only held others (audit of X): no stale row
            self._owner.bar.remove_task(self._id)  # type: ignore[arg-type]
            return
        if task.total is None:
            self._owner.bar.update(self._id, total=task.completed)  # type: ignore[arg-type]
        self._owner.bar.stop_task(self._id)  # type: ignore[arg-type]


class RichProgress:
    """Implements :class:`unlearn_audit.progress.Progress` with rich progress bars on stderr."""

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = stderr.is_terminal and not os.environ.get("UNLEARN_AUDIT_NO_PROGRESS")
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=stderr,
            disable=not enabled,
            transient=False,
        )

    def index(self, task_id: int) -> int:
        return [int(t.id) for t in self.bar.tasks].index(int(task_id))

    def start(self, description: str, total: float | None) -> _RichTask:
        task_id = self.bar.add_task(description, total=total, info="")
        return _RichTask(self, task_id)  # type: ignore[arg-type]

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- plain lines (pipes, CI logs)
DEFAULT_PROGRESS_INTERVAL = 10.0
INTERVAL_ENV = "UNLEARN_AUDIT_PROGRESS_INTERVAL"
NO_PROGRESS_ENV = "UNLEARN_AUDIT_NO_PROGRESS"


def _amount(value: float, total: float | None) -> str:
    """Counts as the user thinks of them: whole numbers whole, fractions of small totals with one decimal."""
    whole = abs(value - round(value)) < 1e-6 or total is None or total >= 20
    return f"{value:.0f}" if whole else f"{value:.1f}"


class _LineTask:
    def __init__(self, owner: LineProgress, description: str, total: float | None) -> None:
        self._owner = owner
        self.description = description
        self.total = total
        self.done = 0.0
        self.info = ""
        self.started = owner.clock()

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self._owner.touch()

    def update(self, *, description: str | None = None, info: str | None = None) -> None:
        if description is not None:
            self.description = description
        if info is not None:
            self.info = info

    def close(self) -> None:
        self._owner.closed(self)

    def status(self, now: float) -> str:
        """``pgd: 120/500 (24%), 9.8/s, eta 0:39, 12.2s in phase``."""
        elapsed = max(now - self.started, 1e-9)
        done = _amount(self.done, self.total)
        parts: list[str] = []
        if self.total is not None:
            share = f" ({min(100.0, 100.0 * self.done / self.total):.0f}%)" if self.total else ""
            parts.append(f"{done}/{_amount(self.total, self.total)}{share}")
        elif self.done:
            parts.append(done)
        rate = self.done / elapsed
        if self.done > 0:
            parts.append(f"{rate:.3g}/s" if rate >= 0.1 else f"{1 / rate:.3g}s each")
        if self.total is not None:
            remaining = max(self.total - self.done, 0.0)
            parts.append(f"eta {format_seconds(remaining / rate)}" if self.done > 0 else "eta unknown")
        parts.append(f"{format_seconds(elapsed)} in phase")
        if self.info:
            parts.append(self.info)
        return f"{self.description}: " + ", ".join(parts)


class LineProgress:
    """Implements :class:`unlearn_audit.progress.Progress` as plain lines on stderr, for pipes and CI logs.

    At most one line every ``interval`` seconds, and at least one while work runs: a line when the first task
    starts, then whenever a task starts or moves and ``interval`` has passed since the last line, and from a
    heartbeat thread when nothing moved for ``interval`` (a long batch). A line names the open tasks, outermost
    first, and the innermost one's done/total, rate and ETA::

        progress [0:42] remediation trial 2/10 > audit of model+rurk > pgd: 120/500 (24%), 9.8/s, eta 0:39, ...

    No colour, no cursor movement: one whole line at a time."""

    def __init__(
        self,
        interval: float = DEFAULT_PROGRESS_INTERVAL,
        *,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval {interval}: give the seconds between lines, a number > 0")
        self.interval = float(interval)
        self.clock = clock
        self._write = write or _write_stderr_line
        self._lock = threading.RLock()
        self._open: list[_LineTask] = []
        self._last_closed: str | None = None
        self._begun = clock()
        self._last_line: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, description: str, total: float | None) -> _LineTask:
        task = _LineTask(self, description, total)
        with self._lock:
            self._open.append(task)
        self.touch()
        return task

    def closed(self, task: _LineTask) -> None:
        with self._lock:
            if task in self._open:
                self._open.remove(task)
                self._last_closed = task.description

    def touch(self) -> None:
        """Something moved: print a line if the last one is ``interval`` old (or there was none)."""
        now = self.clock()
        if self._last_line is None or now - self._last_line >= self.interval:
            self.emit(now)

    def line(self, now: float) -> str:
        with self._lock:
            stamp = f"progress [{format_seconds(now - self._begun)}]"
            if not self._open:
                return f"{stamp} working" + (f" (after {self._last_closed})" if self._last_closed else "")
            *outer, inner = self._open
            return f"{stamp} " + " > ".join([*(t.description for t in outer), inner.status(now)])

    def emit(self, now: float | None = None) -> None:
        """Print the current line now."""
        now = self.clock() if now is None else now
        with self._lock:
            self._last_line = now
            text = self.line(now)
        self._write(text)

    def _heartbeat(self) -> None:
        while True:
            last = self._last_line if self._last_line is not None else self._begun
            if self._stop.wait(max(0.05, last + self.interval - self.clock())):
                return
            with self._lock:
                due = self._last_line is None or self.clock() - self._last_line >= self.interval
            if due:
                self.emit()

    def __enter__(self) -> LineProgress:
        self._thread = threading.Thread(target=self._heartbeat, name="unlearn-audit-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _write_stderr_line(text: str) -> None:
    stderr.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)


def progress_interval(option: float | None) -> float:
    """Seconds between piped progress lines: ``--progress-interval``, else ``$UNLEARN_AUDIT_PROGRESS_INTERVAL``,
    else 10."""
    if option is not None:
        if not (math.isfinite(option) and option > 0):
            raise ConfigError(f"--progress-interval {option:g}: give the seconds between progress lines, a number > 0")
        return float(option)
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_PROGRESS_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{INTERVAL_ENV}={raw!r}: give the seconds between progress lines, a number > 0 (e.g. 30)")
    return value


def progress_display(*, quiet: bool = False, interval: float | None = None, enabled: bool = True) -> Any:
    """The progress renderer for a command (a context manager implementing ``Progress``): rich bars when stderr
    is a terminal, plain lines every ``interval`` seconds when it is a pipe or a file, nothing with ``quiet``,
    ``enabled=False`` or ``$UNLEARN_AUDIT_NO_PROGRESS`` set."""
    seconds = progress_interval(interval)  # a bad value fails even when nothing would be shown
    if quiet or not enabled or os.environ.get(NO_PROGRESS_ENV):
        return RichProgress(enabled=False)
    if stderr.is_terminal:
        return RichProgress(enabled=True)
    return LineProgress(seconds)


def is_interactive() -> bool:
    return sys.stdout.isatty()
