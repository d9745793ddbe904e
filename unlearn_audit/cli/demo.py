"""``unlearn-audit demo``: the whole loop, offline, on the bundled reference models."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from ..render import render_demo, render_demo_intro
from .app import EXIT_FINDING, EXIT_OK
from .groups import with_option_groups
from .options import CacheSettings, DeviceOpt, OutputSettings

USAGE = "unlearn-audit demo [--out DIR]"
REPOSITORY = Path(__file__).resolve().parents[2]

ModelsDirOpt = Annotated[Path | None, typer.Option("--models-dir", help="Folder with the bundled reference models.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Where to write the demo's JSON reports.")]


def reference_models_dir(explicit: Path | None = None) -> Path:
    """Where the bundled reference models live: --models-dir, $UNLEARN_AUDIT_REFERENCE_MODELS, or the repo."""
    candidates = [explicit] if explicit else []
    if os.environ.get("UNLEARN_AUDIT_REFERENCE_MODELS"):
        candidates.append(Path(os.environ["UNLEARN_AUDIT_REFERENCE_MODELS"]))
    candidates.append(REPOSITORY / "reference_models")
    for candidate in candidates:
        if candidate is not None and (candidate / "fmnist-small" / "manifest.json").exists():
            return candidate
    raise ConfigError(
        "bundled reference models not found; run from a clone of the repository, or pass --models-dir "
        "(or set UNLEARN_AUDIT_REFERENCE_MODELS) to the folder holding fmnist-small/"
    )


@with_option_groups
def demo(
    *,
    models_dir: ModelsDirOpt = None,
    out: OutOpt = Path("demo-output"),
    device: DeviceOpt = "auto",
    output: OutputSettings,
    cache: CacheSettings,
) -> int:
    """Run the whole loop offline on the bundled reference models (about a minute on a laptop CPU)."""
    from ..demo import run_demo

    output.configure()
    root = reference_models_dir(models_dir)
    render_demo_intro()
    started = time.perf_counter()
    with output.progress() as progress:
        outcome = run_demo(root, out, device=device, progress=progress, cache_dir=cache.setting())
    render_demo(outcome, out, time.perf_counter() - started)
    return EXIT_OK if outcome.all_as_expected else EXIT_FINDING
