"""Options that several commands share, each declared once, and the option groups that turn them into the
objects the API takes: :class:`ModelLoading` (how to read checkpoints), :class:`SampleLoading` (how to read
sample sets), :class:`ProbeSettings` and :class:`RerunSettings` (the audit's config), :class:`PolicySettings`
(the verdict's thresholds) and :class:`ReportOutput` (``--report DIR``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..errors import ConfigError
from .groups import OptionGroup
from .parsing import parse_draws, parse_names, parse_taus

if TYPE_CHECKING:
    from ..audit import AuditConfig
    from ..io.models import AuditableModel
    from ..io.samples import Samples
    from ..policy import Policy

# ----------------------------------------------------------------------------------- single shared options
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="Hyper-parameter override name=value; repeat.")]
TausOpt = Annotated[
    str | None, typer.Option("--taus", help="τ grid: list (0,0.01) or start:stop:n (0:8/255:11, the default).")
]
ProbesOpt = Annotated[
    str,
    typer.Option(
        "--probes",
        help="Comma-separated: gaussian, uniform-linf, uniform-l2, fgsm, fgsm-untargeted, pgd, pgd-untargeted, pgd-l2.",
    ),
]
DrawsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--draws",
        help="Draws per sample and τ (default 100); repeat as probe=N to override one probe, e.g. --draws pgd=10.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="One seed controls every random choice.")]
CountProbesOpt = Annotated[
    str | None, typer.Option("--count-probes", help="Probes that count toward the verdict (default: all run).")
]


def require_safetensors(out: Path) -> None:
    if out.suffix != ".safetensors":
        raise ConfigError(f"-o {out}: the output must be a .safetensors file")


# ------------------------------------------------------------------------------------------- model loading
@dataclass(frozen=True)
class ModelLoading(OptionGroup):
    """How to read checkpoints without metadata; they apply to every model a command loads. ``options()`` is
    :class:`~unlearn_audit.audit.Audit`'s ``model_options``."""

    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="Architecture: mlp, mlp-WxW, small-cnn, resnet18-cifar, a torchvision name, or file.py:factory. Default: the file's metadata.",
        ),
    ] = None
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", help="Number of classes (default: metadata, or inferred).")
    ] = None
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="Input shape, e.g. 1,28,28 or 64.")] = None
    mean: Annotated[str | None, typer.Option("--mean", help="Normalisation mean per channel, e.g. 0.49,0.48,0.45.")] = (
        None
    )
    std: Annotated[str | None, typer.Option("--std", help="Normalisation std per channel.")] = None
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Accept pickled .pt/.pth files (read with weights_only=True). Only for trusted files.",
        ),
    ] = False

    def load(self, path: Path, device: str) -> AuditableModel:
        """One checkpoint, as the audit would load it."""
        from ..io.models import load_model

        return load_model(path, device=device, **self.options())


# ----------------------------------------------------------------------------------------- sample loading
@dataclass(frozen=True)
class SampleLoading(OptionGroup):
    """How to read sample sets (CSV or ``.npz``). ``options()`` is :class:`~unlearn_audit.audit.Audit`'s
    ``sample_options``."""

    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="Root folder for image paths in CSVs (default: the CSV's folder)."),
    ] = None
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset for index CSVs, e.g. fashion-mnist:train, digits.")
    ] = None
    max_rows: Annotated[int, typer.Option("--max-rows", help="Refuse CSVs with more rows than this.")] = 500_000

    def load(self, path: Path, model: AuditableModel) -> Samples:
        """Samples shaped for ``model`` (greyscale ↔ RGB where the model reads the other); the reader's warnings go to
        stderr."""
        from ..io.samples import load_samples
        from ..io.shapes import fit_samples

        samples = load_samples(
            path, num_classes=model.meta.num_classes, input_shape=model.meta.input_shape, **self.options()
        )
        samples = fit_samples(samples, model)  # greyscale <-> RGB, and a one-line error if the model cannot read it
        for warning in samples.warnings:
            console.warn(warning)
        return samples


# ------------------------------------------------------------------------------------------ audit settings
def audit_config(
    *, probes: str, taus: str | None, draws: list[str] | None, policy: Policy, **settings: Any
) -> AuditConfig:
    """The :class:`~unlearn_audit.audit.AuditConfig` from the option texts; unset ones keep the config's
    defaults (one place for them)."""
    from ..audit import AuditConfig

    default_draws, probe_draws = parse_draws(draws)
    config: dict[str, Any] = dict(settings, probes=parse_names(probes), probe_draws=probe_draws, policy=policy)
    parsed_taus = parse_taus(taus)
    if parsed_taus is not None:
        config["taus"] = parsed_taus
    if default_draws is not None:
        config["draws"] = default_draws
    return AuditConfig(**config)


@dataclass(frozen=True)
class PolicySettings(OptionGroup):
    """The verdict's thresholds (``check``)."""

    alpha: Annotated[float, typer.Option("--alpha", help="Family-wise error rate of a false finding.")] = 0.05
    fdr: Annotated[float, typer.Option("--fdr", help="False-discovery rate of the per-sample flags.")] = 0.05
    tau_min: Annotated[float, typer.Option("--tau-min", help="Smallest τ that counts toward the verdict.")] = 0.0
    tau_max: Annotated[float | None, typer.Option("--tau-max", help="Largest τ that counts toward the verdict.")] = None
    count_probes: CountProbesOpt = None
    margin: Annotated[
        float, typer.Option("--margin", help="Null-band margin with a single reference (seed spread unmeasured).")
    ] = 0.15

    def policy(self) -> Policy:
        from ..policy import Policy

        return Policy(
            alpha=self.alpha,
            fdr=self.fdr,
            tau_min=self.tau_min,
            tau_max=math.inf if self.tau_max is None else self.tau_max,
            probes=parse_names(self.count_probes) if self.count_probes else None,
            single_reference_margin=self.margin,
        )


@dataclass(frozen=True)
class ProbeSettings(OptionGroup):
    """How ``check`` probes: the neighbourhoods, their grid and draws, and how the numbers are computed."""

    taus: TausOpt = None
    probes: ProbesOpt = "gaussian,fgsm,pgd"
    draws: DrawsOpt = None
    seed: SeedOpt = 0
    device: DeviceOpt = "auto"
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Rows per model call (default: from a memory budget).")
    ] = None
    precision: Annotated[
        str,
        typer.Option("--precision", help="auto (bf16 only where it flips <= 0.1% of predictions), fp32, bf16, fp16."),
    ] = "auto"
    engine: Annotated[
        str, typer.Option("--engine", help="fused (ours) or art (ART's attacks; slower second opinion).")
    ] = "fused"
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 2000
    ci_method: Annotated[str, typer.Option("--ci-method", help="bca or percentile.")] = "bca"

    def config(self, policy: Policy, panel: str) -> AuditConfig:
        return audit_config(policy=policy, panel=panel, **self.options())


@dataclass(frozen=True)
class RerunSettings(OptionGroup):
    """The audit ``remediate`` runs before and after (a subset of ``check``'s options)."""

    HELP = {
        "taus": "τ grid of the audit (as in check).",
        "probes": "Probes of the audit (as in check).",
        "draws": "Draws per sample and τ (as in check).",
        "seed": "One seed controls the audit and the remediation.",
    }
    taus: TausOpt = None
    probes: ProbesOpt = "gaussian,fgsm,pgd"
    count_probes: CountProbesOpt = None
    draws: DrawsOpt = None
    seed: SeedOpt = 0

    def config(self, device: str) -> AuditConfig:
        from ..policy import Policy

        counted = parse_names(self.count_probes) if self.count_probes else None
        return audit_config(
            probes=self.probes,
            taus=self.taus,
            draws=self.draws,
            seed=self.seed,
            device=device,
            policy=Policy(probes=counted),
        )


# ------------------------------------------------------------------------------------------ reference cache
@dataclass(frozen=True)
class CacheSettings(OptionGroup):
    """Where the reference side of an audit (the references' predictions and leave-one-out rows) is kept
    between runs (docs/performance.md). ``setting()`` is :class:`~unlearn_audit.audit.Audit`'s ``cache_dir``."""

    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Reuse the references' side of the audit across runs from this folder (default: ~/.cache/unlearn-audit).",
        ),
    ] = None
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the reference cache (each process computes it).")
    ] = False

    def setting(self) -> Path | bool | None:
        if self.no_cache and self.cache_dir is not None:
            raise ConfigError("--cache-dir and --no-cache contradict each other; give one of them")
        return False if self.no_cache else self.cache_dir


# ------------------------------------------------------------------------------------------------ reports
@dataclass(frozen=True)
class ReportOutput(OptionGroup):
    """``--report DIR``: the JSON, HTML and Markdown reports of a result."""

    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.json/.html/.md (see --format) into this folder.")
    ] = None
    report_format: Annotated[
        str, typer.Option("--format", help="Report formats for --report, comma-separated: json, html, md.")
    ] = "json,html,md"
    thumbnails: Annotated[
        bool, typer.Option("--thumbnails/--no-thumbnails", help="Thumbnails of flagged image samples in the HTML.")
    ] = True

    def validate(self) -> None:
        """Fail on a bad --format before any work runs, not after."""
        if self.report_dir is not None:
            from ..report import parse_formats

            parse_formats(self.report_format)

    def write(self, data: dict[str, Any], forget: Samples) -> None:
        """The reports of ``data`` (a result's JSON), with thumbnails drawn from ``forget`` unless switched off."""
        if self.report_dir is None:
            return
        from ..report import parse_formats, write_report

        formats = parse_formats(self.report_format)
        written = write_report(data, self.report_dir, formats, thumbnails=forget if self.thumbnails else False)
        console.say("report written: " + ", ".join(str(p) for p in written.values()), style="dim", markup=False)


def write_json(result: Any, path: Path | None) -> None:
    """``--json PATH``: the result's JSON (an audit's, or a remediation's before/after)."""
    if path is not None:
        result.to_json(path)
        console.say(f"JSON written to {path}", style="dim", markup=False)
