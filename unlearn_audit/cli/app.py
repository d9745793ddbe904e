"""The typer app and the entry points: :func:`main` (argv in, exit code out, never a traceback) and :func:`run`
(the console script). Every failure maps to its exit code and its one line in :data:`EXIT_CODES`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the user's typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from .. import console
from ..errors import UnlearnAuditError

EXIT_OK, EXIT_FINDING, EXIT_INPUT, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(
    name="unlearn-audit",
    help="Audit 'unlearned' models: do they still know the samples they were asked to forget?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

USAGE: dict[str, str] = {}
"""One line per command: how to call it, quoted by usage errors."""


def register(command: Callable[..., int], usage: str) -> None:
    """Add ``command`` to the app (``--help`` lists commands in the order they are registered)."""
    app.command()(command)
    USAGE[command.__name__.replace("_", "-")] = usage


# ----------------------------------------------------------------------------------- failures -> exit codes
def usage_message(exc: BaseException) -> str:
    """A click usage error as one line: the command, what is wrong, and how to call the command."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command.name if ctx is not None and ctx.parent is not None else None
    where = f"unlearn-audit {command}" if command else "unlearn-audit"
    param = getattr(exc, "param", None)
    if isinstance(exc, click_exceptions.MissingParameter) and param is not None:
        what = (
            f"missing option {param.opts[0]}" if param.param_type_name == "option" else f"missing {param.name.upper()}"
        )
    else:
        what = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
    usage = USAGE.get(command, "") if command else f"unlearn-audit COMMAND ... (commands: {', '.join(USAGE)})"
    return f"{where}: {what}; usage: {usage} (see {where} --help)"


def internal_message(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {type(exc).__name__}: {first} (rerun with UNLEARN_AUDIT_DEBUG=1 for the traceback and report it)"


# `unlearn-audit` alone prints the help (click < 8.2 has no such error and exits 0 after the help)
NO_ARGS_IS_HELP: Any = getattr(click_exceptions, "NoArgsIsHelpError", ())

EXIT_CODES: tuple[tuple[type[BaseException], int, Callable[[BaseException], str]], ...] = (
    # (what went wrong, exit code, its one-line message); the first row that matches wins
    (click_exceptions.UsageError, EXIT_INPUT, usage_message),  # missing argument, unknown option, bad value
    (click_exceptions.ClickException, EXIT_INPUT, lambda exc: exc.format_message()),  # type: ignore[attr-defined]
    (typer.Abort, EXIT_INTERRUPTED, lambda exc: "aborted"),
    (KeyboardInterrupt, EXIT_INTERRUPTED, lambda exc: "interrupted"),
    (UnlearnAuditError, EXIT_INPUT, str),  # bad input or configuration: the message names the file/row/field
    (Exception, EXIT_INTERNAL, internal_message),  # a bug: the last line of defence
)


def failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for ``exc`` (from :data:`EXIT_CODES`)."""
    for kind, code, message in EXIT_CODES:
        if isinstance(exc, kind):
            return code, message(exc)
    raise exc


# ------------------------------------------------------------------------------------------- entry points
def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (never raises, never prints a traceback unless asked)."""
    try:
        result: Any = app(args=argv, standalone_mode=False, prog_name="unlearn-audit")
        if result == EXIT_INTERRUPTED:  # typer >= 0.20 turns Ctrl-C into this exit code, silently
            raise KeyboardInterrupt
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:  # --help, or a command that stops early
        return int(getattr(exc, "exit_code", 0) or 0)
    except NO_ARGS_IS_HELP as exc:
        exc.show()
        return EXIT_INPUT
    except (Exception, KeyboardInterrupt) as exc:
        code, message = failure(exc)
        if code == EXIT_INTERNAL and os.environ.get("UNLEARN_AUDIT_DEBUG"):
            raise
        console.error(message)
        return code


def run() -> None:
    from ..device import tune_allocator

    tune_allocator()  # our own process: keep freed tensor memory (unlearn_audit/device.py says why)
    code = main()
    try:
        import torch.distributed as torch_dist

        if torch_dist.is_available() and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - shutting down; the exit code is what matters
        pass
    sys.exit(code)
