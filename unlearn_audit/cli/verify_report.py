"""``unlearn-audit verify-report``: check a saved audit report against its seed file and its files, and rerun it.

Exit 0: every check matches; 1: a mismatch (each one named on its own line); 2: bad input (a missing file, a
report without a binding, a secret-seed report without ``--seed-file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import ConfigError
from .groups import with_option_groups
from .options import DeviceOpt, ModelLoading, SampleLoading, VerboseOpt

USAGE = "unlearn-audit verify-report REPORT.json [--seed-file SEED] [--root DIR] [--path ROLE=FILE ...]"

ReportArg = Annotated[Path, typer.Argument(help="The JSON of check --json (or report.json of --report).")]
SeedFileArg = Annotated[
    Path | None,
    typer.Option("--seed-file", help="The seed file check --seed secret wrote (needed when the seed was secret)."),
]
RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="Look for moved files here: recorded relative paths under DIR, else DIR/<file name>."),
]
PathOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--path",
        help="ROLE=FILE for one moved file; roles: model, reference_0, reference_1, ..., forget, holdout, retain, test, original.",
    ),
]
RtolOpt = Annotated[
    float,
    typer.Option(
        "--rtol", help="Relative tolerance for numbers in the rerun comparison (0: bit-identical, the default)."
    ),
]


def parse_paths(values: list[str] | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values or []:
        role, sep, path = value.partition("=")
        if not sep or not role.strip() or not path.strip():
            raise ConfigError(f"--path {value!r}: write ROLE=FILE, e.g. --path model=moved/model.safetensors")
        out[role.strip()] = Path(path.strip())
    return out


@with_option_groups
def verify_report(
    report: ReportArg,
    *,
    seed_file: SeedFileArg = None,
    root: RootOpt = None,
    path: PathOpt = None,
    models: ModelLoading,
    samples: SampleLoading,
    device: DeviceOpt = "auto",
    rtol: RtolOpt = 0.0,
    verbose: VerboseOpt = False,
) -> int:
    """Verify REPORT: the seed file opens its commitment, every bound file has its sha256, and a rerun gives the
    same verdict and statistics. Exit 0 match, 1 mismatch, 2 bad input."""
    from ..verification import verify_report as run_verification

    console.configure_logging(verbose)
    if rtol < 0 or rtol >= 1:
        raise ConfigError(f"--rtol {rtol}: give a relative tolerance in [0, 1)")
    with console.RichProgress() as progress:
        outcome = run_verification(
            report,
            seed_file,
            root=root,
            paths=parse_paths(path),
            model_options=models.options(),
            sample_options=samples.options(),
            device=device,
            rtol=rtol,
            progress=progress,
        )
    for line in outcome.lines():
        console.say(line, markup=False)
    failed = [c for c in outcome.checks if not c.ok]
    console.say(
        f"verify-report: {'match' if outcome.ok else f'MISMATCH ({len(failed)} check(s) failed)'}", markup=False
    )
    return outcome.exit_code
