"""Command line: ``unlearn-audit check | remediate | unlearn | report | info | demo``.

Thin on purpose: parse options, call the Python API, render, return an exit code. Exit codes (one table,
documented in docs/cli.md):

====  =====================================================================
0     pass: consistent with retraining (or a command that succeeded)
1     finding: residual knowledge or over-unlearning
2     bad input or usage (one-line message naming the file, row or field)
3     inconclusive: the evidence does not decide
4     internal error (a bug: please report it with UNLEARN_AUDIT_DEBUG=1 output)
130   interrupted
====  =====================================================================
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the user's typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from . import console
from .errors import UnlearnAuditError

EXIT_OK, EXIT_FINDING, EXIT_INPUT, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(
    name="unlearn-audit",
    help="Audit 'unlearned' models: do they still know the samples they were asked to forget?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# ---------------------------------------------------------------------------------------------- shared options
ArchOpt = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Architecture: mlp, mlp-WxW, small-cnn, resnet18-cifar, a torchvision name, or file.py:factory. Default: the file's metadata.",
    ),
]
NumClassesOpt = Annotated[
    int | None, typer.Option("--num-classes", help="Number of classes (default: metadata, or inferred).")
]
InputShapeOpt = Annotated[str | None, typer.Option("--input-shape", help="Input shape, e.g. 1,28,28 or 64.")]
MeanOpt = Annotated[str | None, typer.Option("--mean", help="Normalisation mean per channel, e.g. 0.49,0.48,0.45.")]
StdOpt = Annotated[str | None, typer.Option("--std", help="Normalisation std per channel.")]
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle", help="Accept pickled .pt/.pth files (read with weights_only=True). Only for trusted files."
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
DataRootOpt = Annotated[
    Path | None, typer.Option("--data-root", help="Root folder for image paths in CSVs (default: the CSV's folder).")
]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="Dataset for index CSVs, e.g. fashion-mnist:train, digits.")
]
MaxRowsOpt = Annotated[int, typer.Option("--max-rows", help="Refuse CSVs with more rows than this.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")]


def _load(path: Path, *, arch, num_classes, input_shape, mean, std, allow_pickle, device, name=None):
    from .io.models import load_model

    return load_model(
        path,
        arch,
        num_classes,
        input_shape=input_shape,
        mean=mean,
        std=std,
        device=device,
        allow_pickle=allow_pickle,
        name=name,
    )


def _samples(path: Path, model, *, data_root, dataset, max_rows):
    from .io.samples import load_samples

    samples = load_samples(
        path,
        data_root=data_root,
        dataset=dataset,
        num_classes=model.meta.num_classes,
        input_shape=model.meta.input_shape,
        max_rows=max_rows,
    )
    for warning in samples.warnings:
        console.warn(warning)
    return samples


# ----------------------------------------------------------------------------------------------------- info
@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.safetensors; .pt/.pth with --allow-pickle).")],
    arch: ArchOpt = None,
    num_classes: NumClassesOpt = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    allow_pickle: AllowPickleOpt = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Labelled set (CSV or .npz): adds accuracy with a 95% Wilson interval."),
    ] = None,
    data_root: DataRootOpt = None,
    dataset: DatasetOpt = None,
    max_rows: MaxRowsOpt = 500_000,
    device: DeviceOpt = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the description as JSON here.")] = None,
    verbose: VerboseOpt = False,
) -> int:
    """Describe a checkpoint: architecture, parameters, input shape, sha256, metadata, and accuracy on --data."""
    from .info import model_info

    console.configure_logging(verbose)
    loaded = _load(
        model,
        arch=arch,
        num_classes=num_classes,
        input_shape=input_shape,
        mean=mean,
        std=std,
        allow_pickle=allow_pickle,
        device=device,
    )
    samples = _samples(data, loaded, data_root=data_root, dataset=dataset, max_rows=max_rows) if data else None
    described = model_info(loaded, samples)
    rows: list[tuple[str, object]] = [
        ("file", model),
        ("sha256", described.sha256),
        ("arch", described.arch),
        ("classes", described.num_classes),
        ("input shape", "x".join(map(str, described.input_shape)) if described.input_shape else "unknown"),
        ("parameters", f"{described.parameters:,}"),
        ("batch norm", "yes" if described.has_batchnorm else "no"),
        ("normalisation", described.normalisation),
    ]
    rows += [(f"meta: {k}", v) for k, v in sorted(described.metadata.items())]
    if described.accuracy is not None:
        acc = described.accuracy
        rows += [
            ("data", f"{described.data} ({described.samples} samples)"),
            ("accuracy", f"{acc.value:.2%}  (95% Wilson CI {acc.lo:.2%} – {acc.hi:.2%})"),
        ]
    console.key_values(f"unlearn-audit info: {model.name}", rows)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(described.to_dict(), indent=2, sort_keys=True) + "\n")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------- demo
def reference_models_dir(explicit: Path | None = None) -> Path:
    """Where the bundled reference models live: --models-dir, $UNLEARN_AUDIT_REFERENCE_MODELS, or the repo."""
    from .errors import ConfigError

    candidates = [explicit] if explicit else []
    if os.environ.get("UNLEARN_AUDIT_REFERENCE_MODELS"):
        candidates.append(Path(os.environ["UNLEARN_AUDIT_REFERENCE_MODELS"]))
    candidates.append(Path(__file__).resolve().parent.parent / "reference_models")
    for candidate in candidates:
        if candidate is not None and (candidate / "fmnist-small" / "manifest.json").exists():
            return candidate
    raise ConfigError(
        "bundled reference models not found; run from a clone of the repository, or pass --models-dir "
        "(or set UNLEARN_AUDIT_REFERENCE_MODELS) to the folder holding fmnist-small/"
    )


@app.command()
def demo(
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Folder with the bundled reference models.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the demo's outputs.")] = Path("demo-output"),
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> int:
    """Run the whole loop offline on the bundled reference models."""
    root = reference_models_dir(models_dir) / "fmnist-small"
    console.say(f"[bold]unlearn-audit demo[/] on {root}")
    return info(
        root / "original.safetensors",
        data=root / "test.npz",
        device=device,
        json_out=out / "original-info.json",
        verbose=verbose,
        arch=None,
        num_classes=None,
        input_shape=None,
        mean=None,
        std=None,
        allow_pickle=False,
        data_root=None,
        dataset=None,
        max_rows=500_000,
    )


# ----------------------------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (never raises, never prints a traceback unless asked)."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="unlearn-audit")
        return int(result or 0) if isinstance(result, int) else 0
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except click_exceptions.ClickException as exc:
        exc.show()
        return EXIT_INPUT
    except typer.Abort:
        console.error("aborted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except UnlearnAuditError as exc:
        console.error(str(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("UNLEARN_AUDIT_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        console.error(
            f"internal error: {type(exc).__name__}: {first} (rerun with UNLEARN_AUDIT_DEBUG=1 for the traceback and report it)"
        )
        return EXIT_INTERNAL


def run() -> None:
    sys.exit(main())
