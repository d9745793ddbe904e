"""Progress reporting without printing: the library calls a callback; only the CLI renders it (console.py: rich
bars in a terminal, plain lines in a pipe or CI log).

Three kinds of signal, so a long run is never silent:

* a :class:`ProgressTask` per long loop, advanced per batch or step (the bar or line moves);
* :func:`phase`: a task that also logs its start and its end with the duration (shown with ``-v``);
* :func:`milestone`: an ``INFO`` record worth a line of its own even without ``-v`` (a remediation trial's
  outcome); the CLI shows it unless ``--quiet``. :func:`cache_event` logs a cache hit or miss (``-v``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)

MILESTONE = "milestone"
"""The ``extra`` key that marks a log record as a milestone (``logger.info(msg, extra={MILESTONE: True})``)."""


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, description: str | None = None, info: str | None = None) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    """Factory of progress tasks. ``start`` is called once per long loop."""

    def start(self, description: str, total: float | None) -> ProgressTask: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        return None

    def update(self, *, description: str | None = None, info: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None


class NullProgress:
    """Default: report nothing."""

    def start(self, description: str, total: float | None) -> ProgressTask:
        return _NullTask()


NULL_PROGRESS: Progress = NullProgress()


def format_seconds(seconds: float) -> str:
    """``75.3`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``, ``4.2`` -> ``"4.2s"``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@contextmanager
def phase(
    progress: Progress, description: str, total: float | None = None, *, logger: logging.Logger | None = None
) -> Iterator[ProgressTask]:
    """A progress task for one phase of the work, closed however the phase ends; its start and its end (with
    the duration) are logged at ``INFO`` on ``logger`` (default: this module's), which ``-v`` shows."""
    out = logger or log
    out.info("%s: started", description)
    clock = time.perf_counter()
    task = progress.start(description, total)
    failed = True
    try:
        yield task
        failed = False
    finally:
        task.close()
        ended = "stopped after" if failed else "done in"
        out.info("%s: %s %s", description, ended, format_seconds(time.perf_counter() - clock))


def milestone(logger: logging.Logger, message: str, *args: Any) -> None:
    """Log ``message`` at ``INFO`` as a milestone: the CLI prints it without ``-v`` (not with ``--quiet``)."""
    logger.info(message, *args, extra={MILESTONE: True})


def cache_event(logger: logging.Logger, cache: str, hit: bool, what: str, *, detail: str = "") -> None:
    """Log one lookup of a cache at ``INFO`` (``-v``): ``cache hit (work directory): pgd counts, shard 0-256``.

    One call per lookup a user would care about (per probe or per shard, not per row)."""
    logger.info("cache %s (%s): %s%s", "hit" if hit else "miss", cache, what, f" ({detail})" if detail else "")
