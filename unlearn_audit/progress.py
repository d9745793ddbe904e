"""Progress reporting without printing: the library calls a callback; only the CLI renders it (rich)."""

from __future__ import annotations

from typing import Protocol


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
