"""The only module that imports rich (a ruff rule enforces it). Rendering for the CLI: tables, progress
bars, warnings and one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

# Wide when piped to a file or CI log (rich would assume 80 columns); never turn ":train:" into an emoji.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
stdout = Console(highlight=False, soft_wrap=False, emoji=False, width=_WIDTH)
stderr = Console(stderr=True, highlight=False, emoji=False)


def configure_logging(verbose: bool = False) -> None:
    root = logging.getLogger("unlearn_audit")
    root.handlers.clear()
    root.addHandler(_ConsoleHandler())
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
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


def is_interactive() -> bool:
    return sys.stdout.isatty()
