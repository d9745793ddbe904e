"""``unlearn-audit report``: re-render a saved result as HTML, Markdown or current-schema JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import ConfigError
from .app import EXIT_OK

USAGE = "unlearn-audit report RESULT.json -o report.html"

ResultArg = Annotated[Path, typer.Argument(help="A saved result: the JSON of check --json/--report or remediate.")]
OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Output file: report.html, report.md or report.json.")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="html, md or json (default: from the suffix of -o).")]
ThumbnailsOpt = Annotated[
    bool,
    typer.Option(
        "--thumbnails/--no-thumbnails", help="Thumbnails of flagged image samples (needs the forget set on disk)."
    ),
]


def output_format(out: Path, report_format: str | None) -> str:
    """The one format to write: from --format, else from the suffix of -o."""
    from ..report import SUFFIXES, parse_formats

    if report_format is not None:
        formats = parse_formats(report_format)
        if len(formats) != 1:
            raise ConfigError(f"--format {report_format!r}: give exactly one format for -o {out}")
        return formats[0]
    if out.suffix.lower() in SUFFIXES:
        return SUFFIXES[out.suffix.lower()]
    raise ConfigError(
        f"-o {out}: cannot tell the format from {out.suffix or 'no suffix'!r}; use .html, .md, .json or --format"
    )


def report(
    result: ResultArg, out: OutOpt = None, report_format: FormatOpt = None, thumbnails: ThumbnailsOpt = True
) -> int:
    """Re-render a saved result (any readable schema version) as HTML, Markdown or current-schema JSON."""
    from ..report import load_report, render

    if out is None:
        raise ConfigError(f"report {result}: give the output file with -o, e.g. -o report.html (or .md, .json)")
    chosen = output_format(out, report_format)
    doc = load_report(result)
    text = render(doc, chosen, thumbnails=thumbnails, search_dirs=[result.resolve().parent, Path.cwd()])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.say(f"{chosen} report written to {out} (verdict: {doc.get('verdict', doc.get('kind'))})", markup=False)
    return EXIT_OK
