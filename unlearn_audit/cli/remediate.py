"""``unlearn-audit remediate``: fix a model that fails the audit (RURK or ReA), re-audit it, save it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from ..render import render_remediation
from .groups import OptionGroup, with_option_groups
from .options import (
    CacheSettings,
    DeviceOpt,
    ModelLoading,
    OutputSettings,
    ParamOpt,
    ReportOutput,
    RerunSettings,
    SampleLoading,
    load_audit,
    require_safetensors,
    write_json,
)
from .parsing import parse_hparams

if TYPE_CHECKING:
    from ..remediation import RemediationResult

USAGE = (
    "unlearn-audit remediate MODEL --forget FORGET --retain RETAIN --reference REF [--reference REF ...] "
    "-o OUT.safetensors [options]"
)

ModelArg = Annotated[
    Path,
    typer.Argument(
        help="The model to remediate (the original or an unlearned model): .safetensors, a Hugging Face folder or weights for --arch timm:NAME / hf:DIR; not a .pt2 or .onnx program (its weights cannot be saved and loaded back)."
    ),
]
ForgetOpt = Annotated[Path, typer.Option("--forget", help="The forget set (CSV or .npz).")]
RetainOpt = Annotated[Path, typer.Option("--retain", help="The retain set the remediation trains on.")]
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Where to write the remediated model (.safetensors).")]
ReferenceOpt = Annotated[
    list[Path] | None,
    typer.Option("--reference", help="A retrained reference that judges the result; repeat for several."),
]
TestOpt = Annotated[Path | None, typer.Option("--test", help="Held-out test set: report its accuracy cost.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the before/after JSON here.")]


@dataclass(frozen=True)
class RemediationSettings(OptionGroup):
    """Which method fixes the model, how hard it may push, and what it may cost."""

    method: Annotated[str, typer.Option("--method", help="rurk (default) or rea (ReA's dual-phase method).")] = "rurk"
    preset: Annotated[
        str | None, typer.Option("--preset", help="RURK λ preset: small (λ_f=λ_a=0.03) or cifar10 (λ_a=0.00045).")
    ] = None
    param: ParamOpt = None
    budget: Annotated[
        float, typer.Option("--budget", help="Largest retain-accuracy drop (points) a success may cost.")
    ] = 2.0
    search: Annotated[
        bool, typer.Option("--search", help="Bisect the method's strength (RURK: λ_a) until the audit passes.")
    ] = False

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`~unlearn_audit.audit.Audit.remediate` besides the data sets."""
        hparams = parse_hparams(self.param) | ({"preset": self.preset} if self.preset is not None else {})
        return dict(method=self.method, budget=self.budget, search=self.search, **hparams)


def save_remediated(result: RemediationResult, out: Path) -> str:
    """Write the fixed model with its provenance (method, hyper-parameters, parent's sha256, seed)."""
    from ..io.models import save_model

    return save_model(
        result.model,
        out,
        method=result.method,
        hparams=result.hyperparameters,
        parent_sha256=result.input_sha256,
        seed=result.seed,
    )


@with_option_groups
def remediate(
    model: ModelArg,
    *,
    forget: ForgetOpt,
    retain: RetainOpt,
    out: OutOpt,
    reference: ReferenceOpt = None,
    test: TestOpt = None,
    fixing: RemediationSettings,
    json_out: JsonOpt = None,
    report: ReportOutput,
    audit_settings: RerunSettings,
    models: ModelLoading,
    samples: SampleLoading,
    cache: CacheSettings,
    device: DeviceOpt = "auto",
    output: OutputSettings,
) -> int:
    """Remediate MODEL (RURK), re-run the same audit on the result, and save it. Exit 0 success, 1 not, 2 bad input."""
    output.configure()
    require_safetensors(out)
    models.refuse_fixed_program(model, "remediate")
    if not reference:
        raise ConfigError("remediate needs at least one --reference (a model retrained without the forget set)")
    report.validate()
    arguments, config = fixing.arguments(), audit_settings.config(device)
    with output.progress() as progress:
        audit = load_audit(
            model,
            models,
            samples,
            progress,
            references=reference,
            forget=forget,
            config=config,
            cache_dir=cache.setting(),
        )
        result = audit.remediate(retain=retain, test=test, **arguments)
    digest = save_remediated(result, out)
    render_remediation(result, out, digest)
    write_json(result, json_out)
    report.write(json.loads(result.to_json()), audit.forget)
    return result.exit_code
