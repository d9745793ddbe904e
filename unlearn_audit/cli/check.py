"""``unlearn-audit check``: audit a model for residual knowledge of its forget set (the CI gate)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..config import AuditConfig
from ..errors import ConfigError
from ..render import render_result
from ..stats.sequential import DEFAULT_SPENDING
from .groups import OptionGroup, with_option_groups
from .options import (
    CacheSettings,
    ModelLoading,
    OutputSettings,
    PolicySettings,
    ProbeSettings,
    ReportOutput,
    SampleLoading,
    load_audit,
    write_json,
)
from .parsing import parse_taus
from .remote import ModelSources, RemoteAccess

USAGE = "unlearn-audit check MODEL --forget FORGET --reference REF [--reference REF ...] [options]"

ModelArg = Annotated[
    str,
    typer.Argument(
        help="The unlearned model to audit: .safetensors (+ --arch unless its metadata names it), a torch.export .pt2, an .onnx file, a Hugging Face folder, or weights for --arch timm:NAME / hf:DIR; .pt/.pth with --allow-pickle (docs/inputs.md); or a served model: http(s)://HOST:PORT/v2/models/NAME (docs/remote.md)."
    ),
]
ForgetOpt = Annotated[Path, typer.Option("--forget", help="The forget set (CSV or .npz).")]
ReferenceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--reference",
        help="A model retrained without the forget set, in any form MODEL takes (a file, a folder or an endpoint URL); repeat for several (K >= 2 measures the retraining spread).",
    ),
]
HoldoutOpt = Annotated[
    Path | None,
    typer.Option(
        "--holdout", help="Unseen samples of the forget set's classes: R_norm beside R, or reference-free screening."
    ),
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")]


@dataclass(frozen=True)
class LongRuns(OptionGroup):
    """Checkpointed, resumable and distributed audits (docs/scale.md)."""

    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            help="Checkpoint partial counts (and served models' answers) here; rerunning the same command resumes.",
        ),
    ] = None
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="Forget samples per checkpoint / distributed work unit.")
    ] = 256


@dataclass(frozen=True)
class SequentialSettings(OptionGroup):
    """Sequential audits that stop when the answer is known (docs/methodology.md, "Sequential audits")."""

    stop_early: Annotated[
        bool,
        typer.Option(
            "--stop-early",
            help="Look at the forget set in stages (seeded order) and stop once every counted probe is decided; alpha spending keeps the false-finding rate.",
        ),
    ] = False
    looks: Annotated[
        str,
        typer.Option(
            "--looks", help="With --stop-early: shares of the forget set seen at each look, e.g. 1/8,1/4,1/2,1."
        ),
    ] = "1/4,1/2,1"
    spending: Annotated[
        str,
        typer.Option(
            "--spending",
            help="With --stop-early: alpha spending over the looks, kim-demets (alpha*t^1.5: stops clear findings at a quarter of the set, last look 4 % wider than the full audit's), obrien-fleming (strict early looks, last look nearest the full audit) or pocock (stops earliest, widest last look).",
        ),
    ] = DEFAULT_SPENDING
    per_sample: Annotated[
        str,
        typer.Option(
            "--per-sample",
            help="With --stop-early: per-sample evidence for the samples seen (seen) or for every sample (all; finishes the rest).",
        ),
    ] = "seen"

    def apply(self, config: AuditConfig) -> AuditConfig:
        """``config`` with these settings; the sequential ones without --stop-early are an error, not ignored."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        flags = (("looks", "--looks"), ("spending", "--spending"), ("per_sample", "--per-sample"))
        changed = [flag for name, flag in flags if getattr(self, name) != defaults[name]]
        if changed and not self.stop_early:
            raise ConfigError(f"{', '.join(changed)}: only with --stop-early")
        looks = parse_taus(self.looks, "--looks") or ()
        settings: dict[str, Any] = {
            "stop_early": self.stop_early,
            "looks": looks,
            "spending": self.spending,
            "per_sample": self.per_sample,
        }
        return dataclasses.replace(config, **settings)


@dataclass(frozen=True)
class PanelInputs(OptionGroup):
    """The standard unlearning panel beside r_τ, and the models and sets it scores (docs/metrics.md)."""

    original: Annotated[
        Path | None, typer.Option("--original", help="The model before unlearning: adds re-learn time to the panel.")
    ] = None
    retain: Annotated[
        Path | None, typer.Option("--retain", help="Retain samples (or a subset): Retain Acc and the MIAs' training.")
    ] = None
    test: Annotated[
        Path | None, typer.Option("--test", help="Held-out test samples: Test Acc, the MIAs' unseen side, ROC.")
    ] = None
    panel: Annotated[
        str,
        typer.Option(
            "--panel",
            help="Standard unlearning panel beside r_τ: standard (accuracies, MIA, Avg Gap, re-learn time), all (+ Reminiscence probe), none.",
        ),
    ] = "standard"

    def sets(self) -> dict[str, Any]:
        """The panel's inputs as :class:`~unlearn_audit.audit.Audit` takes them."""
        return dict(original=self.original, retain=self.retain, test=self.test)


def command_line() -> str | None:
    """The command as typed, for the provenance (None when ``check`` did not come from argv)."""
    return "unlearn-audit check " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["check"] else None


@with_option_groups
def check(
    model: ModelArg,
    *,
    forget: ForgetOpt,
    reference: ReferenceOpt = None,
    holdout: HoldoutOpt = None,
    models: ModelLoading,
    samples: SampleLoading,
    probing: ProbeSettings,
    policy: PolicySettings,
    json_out: JsonOpt = None,
    report: ReportOutput,
    long_runs: LongRuns,
    metrics: PanelInputs,
    remote: RemoteAccess,
    output: OutputSettings,
    cache: CacheSettings,
    sequential: SequentialSettings,
) -> int:
    """Audit MODEL: does it still know the forget set? Exit 0 pass, 1 finding, 2 bad input, 3 inconclusive.

    Under torchrun (``torchrun --nproc-per-node N -m unlearn_audit check ...``) the forget set is sharded across
    processes and rank 0 prints and writes the report."""
    from ..distributed import current

    output.configure()
    report.validate()
    config = sequential.apply(probing.config(policy.policy(), metrics.panel))
    dist = current()
    sources = ModelSources(
        remote, seed=config.library_seed("remote"), num_classes=models.num_classes, work_dir=long_runs.work_dir
    )
    with sources, output.progress(enabled=dist is None or dist.is_main) as progress:
        audit = load_audit(
            sources.resolve(model, "model"),
            models,
            samples,
            progress,
            references=[sources.resolve(r, f"reference-{i}") for i, r in enumerate(reference or [])],
            surrogate=sources.resolve(remote.surrogate, "surrogate") if remote.surrogate else None,
            forget=forget,
            holdout=holdout,
            config=config,
            command=command_line(),
            cache_dir=cache.setting(),
            **long_runs.options(),
            **metrics.sets(),
        )
        for warning in [*audit.forget.warnings, *(audit.holdout.warnings if audit.holdout else [])]:
            console.warn(warning)
        result = audit.run()
    if dist is not None and not dist.is_main:
        return result.exit_code
    render_result(result)
    write_json(result, json_out)
    report.write(result.to_dict(), audit.forget)
    return result.exit_code
