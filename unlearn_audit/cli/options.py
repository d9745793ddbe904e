"""Options that several commands share, each declared once, and the option groups that turn them into the
objects the API takes: :class:`ModelLoading` (how to read checkpoints), :class:`SampleLoading` (how to read
sample sets), :class:`ProbeSettings` and :class:`RerunSettings` (the audit's config), :class:`PolicySettings`
(the verdict's thresholds) and :class:`ReportOutput` (``--report DIR``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..errors import ConfigError
from .groups import OptionGroup
from .parsing import parse_draws, parse_names, parse_seed, parse_taus

if TYPE_CHECKING:
    from ..audit import Audit, AuditConfig
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
        help="Comma-separated: gaussian, uniform-linf, uniform-l2, fgsm, fgsm-untargeted, pgd, pgd-untargeted, pgd-l2, square (query-based).",
    ),
]
DrawsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--draws",
        help="Draws per sample and τ (default 100), or auto (a pilot picks the fewest that keep Monte-Carlo noise under 10% of R's variance); repeat as probe=N to override one probe, e.g. --draws pgd=10.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="One seed controls every random choice.")]
AuditSeedOpt = Annotated[
    str,
    typer.Option(
        "--seed",
        help="One seed controls every random choice: an integer, or secret (128 bits drawn from the OS, written only to --seed-file; the report carries its commitment).",
    ),
]
SeedFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--seed-file",
        help="With --seed secret: write the seed here (a new file, mode 0600) for verify-report; keep it from the audited party.",
    ),
]
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
            help="Architecture of a state dict: mlp, mlp-WxW, small-cnn, resnet18-cifar, a torchvision name, file.py:factory, timm:NAME (needs the timm extra) or hf:DIR (a Hugging Face config folder; needs the hf extra). Default: the file's metadata. Not needed for .pt2, .onnx or a Hugging Face folder.",
        ),
    ] = None
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", help="Number of classes (default: metadata, or inferred).")
    ] = None
    input_shape: Annotated[
        str | None,
        typer.Option(
            "--input-shape",
            help="Input shape without the batch, e.g. 1,28,28 or 64. Default: the file's metadata, the program's input (.pt2, .onnx) or the model's config (timm, Hugging Face).",
        ),
    ] = None
    mean: Annotated[
        str | None,
        typer.Option(
            "--mean",
            help="Normalisation mean per channel, e.g. 0.49,0.48,0.45. Default: the file's metadata (safetensors header, .pt2 extra files, ONNX metadata_props), timm's pretrained_cfg or the Hugging Face preprocessor_config.json.",
        ),
    ] = None
    std: Annotated[
        str | None, typer.Option("--std", help="Normalisation std per channel. Default: the same source as --mean.")
    ] = None
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Accept pickled .pt/.pth files and a Hugging Face folder's pytorch_model.bin (read with weights_only=True). Only for trusted files; .safetensors, .pt2 and .onnx never need it.",
        ),
    ] = False

    def refuse_fixed_program(self, path: Path, command: str) -> None:
        """``unlearn``/``remediate`` train and save the model: refuse a .pt2/ONNX file before any work runs."""
        from ..io.formats import model_format, refuse_fixed_program

        refuse_fixed_program(model_format(path, self.arch), path, f"unlearn-audit {command}")

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
    if default_draws == "auto":
        config["draws_auto"] = True
    elif default_draws is not None:
        config["draws"] = default_draws
    mc_share = config.pop("mc_share", None)
    if mc_share is not None:
        if not config.get("draws_auto"):
            raise ConfigError(f"--mc-share {mc_share}: only with --draws auto (it sets the pilot's target)")
        config["mc_share"] = mc_share
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
    mc_share: Annotated[
        float | None,
        typer.Option(
            "--mc-share",
            help="With --draws auto: the largest share of R's variance Monte-Carlo noise may make (default 0.1).",
        ),
    ] = None
    seed: AuditSeedOpt = "0"
    seed_file: SeedFileOpt = None
    jitter_taus: Annotated[
        bool,
        typer.Option(
            "--jitter-taus",
            help="With --seed secret: draw the τ grid from the secret seed, one τ uniformly in each of equal strata of the --taus range (τ = 0 kept).",
        ),
    ] = False
    device: DeviceOpt = "auto"
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Rows per model call (default: from a memory budget).")
    ] = None
    precision: Annotated[
        str,
        typer.Option("--precision", help="auto (bf16 only where it flips <= 0.1% of predictions), fp32, bf16, fp16."),
    ] = "auto"
    craft_precision: Annotated[
        str,
        typer.Option(
            "--craft-precision",
            help="Precision of FGSM/PGD crafting: auto (bf16 where a crafting check keeps the attack's strength; rows are always scored in --precision), fp32, bf16, fp16.",
        ),
    ] = "auto"
    frozen_scoring: Annotated[
        bool,
        typer.Option(
            "--frozen-scoring/--eager-scoring",
            help="Score rows with frozen inference graphs where safe (CPU, fp32, fx-traceable networks, checked against the module) or always with the eager module.",
        ),
    ] = True
    engine: Annotated[
        str, typer.Option("--engine", help="fused (ours) or art (ART's attacks; slower second opinion).")
    ] = "fused"
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 2000
    ci_method: Annotated[str, typer.Option("--ci-method", help="bca or percentile.")] = "bca"

    def config(self, policy: Policy, panel: str) -> AuditConfig:
        """The audit's config. With ``--seed secret`` the seed is drawn and written to ``--seed-file`` here, after
        every other option was validated and before any work runs."""
        options = self.options()
        seed, seed_file = parse_seed(options.pop("seed")), options.pop("seed_file")
        jitter = options.pop("jitter_taus")
        if jitter and seed is not None:
            raise ConfigError(
                "--jitter-taus draws the τ grid from a secret seed: use it with --seed secret --seed-file"
            )
        if seed is None and seed_file is None:
            raise ConfigError("--seed secret needs --seed-file PATH: the only copy of the seed, for verify-report")
        if seed is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--seed secret: not supported under torchrun yet (each process would draw its own seed)")
        if seed is not None and seed_file is not None:
            raise ConfigError(f"--seed-file {seed_file}: only with --seed secret (a public seed is in the report)")
        config = audit_config(policy=policy, panel=panel, seed=seed or 0, **options)
        if jitter:
            config.with_jittered_taus()  # a grid it cannot draw from fails here, before a seed file is written
        if seed is None:
            from ..commitment import SecretSeed

            secret = SecretSeed.draw()
            secret.write(seed_file)  # type: ignore[arg-type]
            console.say(
                f"secret seed written to {seed_file} (commitment {secret.commitment[:16]}…)", style="dim", markup=False
            )
            config = config.with_secret_seed(secret)
        return config.with_jittered_taus() if jitter else config


@dataclass(frozen=True)
class RerunSettings(OptionGroup):
    """The audit ``remediate`` runs before and after (a subset of ``check``'s options)."""

    HELP = {
        "taus": "τ grid of the audit (as in check).",
        "probes": "Probes of the audit (as in check).",
        "draws": "Draws per sample and τ (as in check), or auto; default auto here (a pilot picks the fewest draws that keep Monte-Carlo noise under 10% of R's variance; the search re-audits many times). --draws 100 gives check's default.",
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
            draws=["auto", *(self.draws or [])] if all("=" in d for d in self.draws or []) else self.draws,
            seed=self.seed,
            device=device,
            policy=Policy(probes=counted),
        )


# ------------------------------------------------------------------------------------- what a run prints
@dataclass(frozen=True)
class OutputSettings(OptionGroup):
    """What a long command prints while it works (docs/cli.md, "Progress and logs"): ``-v``, ``--quiet`` and
    ``--progress-interval``."""

    HELP = {
        "verbose": "Log each phase's start and end with its duration, cache hits, the precision decision and each "
        "remediation trial."
    }
    verbose: VerboseOpt = False
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no info lines: only the result, warnings and errors.")
    ] = False
    progress_interval: Annotated[
        float | None,
        typer.Option(
            "--progress-interval",
            metavar="SECONDS",
            help="Seconds between progress lines when stderr is not a terminal (a pipe, a file, a CI log); default "
            "$UNLEARN_AUDIT_PROGRESS_INTERVAL or 10.",
        ),
    ] = None

    def configure(self) -> None:
        """Logging for this run; a contradiction or a bad interval fails here, before any work."""
        console.configure_logging(self.verbose, self.quiet)
        console.progress_interval(self.progress_interval)

    def progress(self, *, enabled: bool = True) -> Any:
        """The progress renderer (a context manager): bars in a terminal, lines in a pipe, nothing with --quiet."""
        return console.progress_display(quiet=self.quiet, interval=self.progress_interval, enabled=enabled)


def load_audit(model: Any, models: ModelLoading, samples: SampleLoading, progress: Any, **settings: Any) -> Audit:
    """The :class:`~unlearn_audit.audit.Audit` of ``check`` or ``remediate``, its files read as the first phase of
    the progress display (``loading models and samples``)."""
    from ..audit import Audit
    from ..progress import phase

    with phase(progress, "loading models and samples"):
        return Audit(
            model, progress=progress, model_options=models.options(), sample_options=samples.options(), **settings
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
