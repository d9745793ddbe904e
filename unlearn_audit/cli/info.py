"""``unlearn-audit info``: describe a checkpoint, and its accuracy on a labelled set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..render import render_model_info
from .app import EXIT_OK
from .groups import with_option_groups
from .options import DeviceOpt, ModelLoading, SampleLoading, VerboseOpt

USAGE = "unlearn-audit info MODEL [--data CSV]"

ModelArg = Annotated[
    Path,
    typer.Argument(
        help="The model: .safetensors (+ --arch unless its metadata names it), a torch.export .pt2, an .onnx file, a Hugging Face folder, or weights for --arch timm:NAME / hf:DIR; .pt/.pth with --allow-pickle (docs/inputs.md)."
    ),
]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Labelled set (CSV or .npz): adds accuracy with a 95% Wilson interval.")
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the description as JSON here.")]


@with_option_groups
def info(
    model: ModelArg,
    *,
    models: ModelLoading,
    data: DataOpt = None,
    samples: SampleLoading,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    verbose: VerboseOpt = False,
) -> int:
    """Describe a model: format, architecture, parameters, input shape, sha256, metadata, accuracy on --data."""
    from ..info import model_info

    console.configure_logging(verbose)
    loaded = models.load(model, device)
    described = model_info(loaded, samples.load(data, loaded) if data else None)
    render_model_info(model, described)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(described.to_dict(), indent=2, sort_keys=True) + "\n")
    return EXIT_OK
