"""``unlearn-audit unlearn``: run a method of the unlearning zoo and save its output with its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..render import render_unlearned
from .app import EXIT_OK
from .groups import with_option_groups
from .options import DeviceOpt, ModelLoading, OutputSettings, ParamOpt, SampleLoading, require_safetensors
from .parsing import parse_hparams

USAGE = "unlearn-audit unlearn METHOD MODEL --forget FORGET --retain RETAIN -o OUT.safetensors"

MethodArg = Annotated[
    str,
    typer.Argument(help="Method: retrain, gd, ngd, ga, neggrad+, eu-k, cf-k, scrub, ssd, fisher, ntk, cr, rurk, rea."),
]
ModelArg = Annotated[
    Path,
    typer.Argument(
        help="The model to unlearn from (usually the original): .safetensors, a Hugging Face folder or weights for --arch timm:NAME / hf:DIR; not a .pt2 or .onnx program (its weights cannot be saved and loaded back)."
    ),
]
ForgetOpt = Annotated[Path, typer.Option("--forget", help="The forget set.")]
RetainOpt = Annotated[Path, typer.Option("--retain", help="The retain set.")]
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Where to write the unlearned model (.safetensors).")]
SeedOpt = Annotated[int, typer.Option("--seed")]


@with_option_groups
def unlearn(
    method: MethodArg,
    model: ModelArg,
    *,
    forget: ForgetOpt,
    retain: RetainOpt,
    out: OutOpt,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    models: ModelLoading,
    samples: SampleLoading,
    device: DeviceOpt = "auto",
    output: OutputSettings,
) -> int:
    """Run an unlearning method from the zoo and save the result with its method and hyper-parameters."""
    from ..io.models import save_model
    from ..progress import phase
    from ..unlearning import method_defaults
    from ..unlearning import unlearn as run_method

    output.configure()
    require_safetensors(out)
    models.refuse_fixed_program(model, "unlearn")
    defaults = method_defaults(method)
    hparams = parse_hparams(param)
    with output.progress() as progress:
        with phase(progress, "loading models and samples"):
            loaded = models.load(model, device)
            forget_set, retain_set = samples.load(forget, loaded), samples.load(retain, loaded)
        with phase(progress, f"unlearning: {method}"):
            result = run_method(method, loaded, forget_set, retain_set, seed=seed, progress=progress, **hparams)
    digest = save_model(result, out)
    render_unlearned(method, model, loaded.meta.sha256, out, digest, {**defaults, **hparams}, seed)
    return EXIT_OK
