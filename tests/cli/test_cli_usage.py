"""Usage errors and the exit-code table: a command called wrongly prints one ``error:`` line that names what is
wrong and how to call it (exit 2), never click's usage dump; failures map to their exit codes in one table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer

from tests.conftest import DIGITS, FMNIST, assert_one_line_error
from unlearn_audit.cli import EXIT_INTERNAL, EXIT_INTERRUPTED
from unlearn_audit.cli.app import USAGE
from unlearn_audit.cli.groups import OptionGroup, group_parameters, with_option_groups
from unlearn_audit.cli.options import ModelLoading


@pytest.mark.parametrize(
    ("command", "missing"),
    [("report", "RESULT"), ("check", "MODEL"), ("info", "MODEL"), ("unlearn", "METHOD"), ("remediate", "MODEL")],
)
def test_a_command_without_arguments_names_what_is_missing(cli, command, missing):
    """Every command with a required argument (``demo`` has none: it runs)."""
    result = cli(command)
    assert_one_line_error(result, f"unlearn-audit {command}: missing {missing}", f"usage: {USAGE[command]}")
    assert "Usage:" not in result.err and "Try '" not in result.err and result.out == ""


def test_report_without_arguments(cli):
    """Issue 13: not click's usage dump but our line, with the way to call it."""
    result = cli("report")
    assert_one_line_error(result, "missing RESULT", "unlearn-audit report RESULT.json -o report.html")


def test_a_missing_required_option_is_named(cli):
    assert_one_line_error(cli("check", FMNIST / "gd.safetensors"), "missing option --forget", "usage:")
    assert_one_line_error(
        cli("unlearn", "ga", DIGITS / "original.safetensors", "--forget", DIGITS / "forget.csv"),
        "missing option --retain",
    )


def test_unknown_options_commands_and_bad_values(cli):
    assert_one_line_error(cli("check", "--bogus"), "unlearn-audit check: No such option: --bogus")
    assert_one_line_error(cli("bogus"), "No such command 'bogus'", "commands: info, check, report")
    assert_one_line_error(cli("info", DIGITS / "original.safetensors", "--max-rows", "x"), "'--max-rows'")


def test_the_app_alone_prints_its_help(cli):
    result = cli()
    assert result.code == 2 and "Commands:" in result.err + result.out


def test_help_exits_zero(cli):
    assert cli("report", "--help").code == 0


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (RuntimeError("boom\nsecond line"), EXIT_INTERNAL, "internal error: RuntimeError: boom (rerun with"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
        (typer.Abort(), EXIT_INTERRUPTED, "aborted"),
    ],
)
def test_failures_map_to_their_exit_codes(cli, monkeypatch, raised, code, line):
    def fail(self, path, device):
        raise raised

    monkeypatch.delenv("UNLEARN_AUDIT_DEBUG", raising=False)
    monkeypatch.setattr(ModelLoading, "load", fail)
    assert_one_line_error(cli("info", DIGITS / "original.safetensors"), line, code=code)


def test_debug_reraises_internal_errors(cli, monkeypatch):
    def fail(self, path, device):
        raise RuntimeError("boom")

    monkeypatch.setenv("UNLEARN_AUDIT_DEBUG", "1")
    monkeypatch.setattr(ModelLoading, "load", fail)
    with pytest.raises(RuntimeError, match="boom"):
        cli("info", DIGITS / "original.safetensors")


# ------------------------------------------------------------------------------------------- option groups
@dataclass(frozen=True)
class Sizes(OptionGroup):
    HELP = {"width": "Reworded."}
    width: Annotated[int, typer.Option("--width", help="Width.")] = 3
    name: Annotated[str | None, typer.Option("--name", help="Name.")] = None


def test_groups_are_spliced_in_place_and_packed_back():
    seen = {}

    @with_option_groups
    def command(path: Annotated[Path, typer.Argument()], *, sizes: Sizes, verbose: bool = False) -> int:
        seen.update(path=path, sizes=sizes, verbose=verbose)
        return 0

    import inspect

    assert list(inspect.signature(command).parameters) == ["path", "width", "name", "verbose"]
    command(path=Path("x"), width=5, name=None, verbose=True)
    assert seen == {"path": Path("x"), "sizes": Sizes(width=5), "verbose": True}
    assert dataclasses.asdict(seen["sizes"]) == Sizes(width=5).options()


def test_help_is_reworded_on_a_copy():
    width = group_parameters(Sizes)[0].annotation.__metadata__[0]
    original = Sizes.__annotations__  # the declaration itself keeps its help
    assert width.help == "Reworded." and "Width." in str(original["width"])


def test_a_parameter_in_two_groups_is_refused():
    with pytest.raises(TypeError, match="repeat the parameter"):

        @with_option_groups
        def command(*, a: Sizes, b: Sizes) -> int:
            return 0


def test_remediate_draws_default_to_auto_and_an_explicit_count_wins():
    """The search re-audits many times: remediate's default draws come from the pilot (docs/cli.md, remediate)."""
    from unlearn_audit.cli.options import RerunSettings

    default = RerunSettings().config("cpu")
    assert default.draws_auto and default.probes == ("gaussian", "fgsm", "pgd")
    explicit = RerunSettings(draws=["100"]).config("cpu")
    assert not explicit.draws_auto and explicit.draws == 100
    override = RerunSettings(draws=["pgd=4"]).config("cpu")  # a per-probe override alone: the rest stay auto
    assert override.draws_auto and override.probe_draws == (("pgd", 4),)
