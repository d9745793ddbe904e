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
from typing import Annotated, Any

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
    from .io.shapes import fit_samples

    samples = load_samples(
        path,
        data_root=data_root,
        dataset=dataset,
        num_classes=model.meta.num_classes,
        input_shape=model.meta.input_shape,
        max_rows=max_rows,
    )
    samples = fit_samples(samples, model)  # greyscale <-> RGB, and a one-line error if the model cannot read it
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


# ---------------------------------------------------------------------------------------------------- check
def parse_taus(text: str | None) -> tuple[float, ...] | None:
    """``0,0.01,0.02`` or ``start:stop:n`` (inclusive linspace); numbers may be fractions like ``8/255``."""
    from .errors import ConfigError

    if text is None:
        return None

    def number(item: str) -> float:
        item = item.strip()
        try:
            if "/" in item:
                num, den = item.split("/", 1)
                return float(num) / float(den)
            return float(item)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--taus {text!r}: {item!r} is not a number (use 0.01 or 8/255)") from None

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--taus {text!r}: write start:stop:n, e.g. 0:8/255:11")
        start, stop = number(parts[0]), number(parts[1])
        try:
            count = int(parts[2])
        except ValueError:
            raise ConfigError(f"--taus {text!r}: n must be an integer") from None
        if count < 1:
            raise ConfigError(f"--taus {text!r}: n must be at least 1")
        import numpy as np

        return tuple(float(t) for t in np.linspace(start, stop, count))
    return tuple(number(item) for item in text.split(",") if item.strip())


def parse_draws(values: list[str] | None) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """``--draws 100 --draws pgd=10`` -> (100, (("pgd", 10),))."""
    from .errors import ConfigError

    default, per_probe = None, []
    for value in values or []:
        name, sep, number = value.partition("=")
        try:
            if sep:
                per_probe.append((name.strip(), int(number)))
            else:
                default = int(value)
        except ValueError:
            raise ConfigError(f"--draws {value!r}: give an integer, or probe=integer (e.g. pgd=10)") from None
    return default, tuple(per_probe)


def _fmt(x: float | None, digits: int = 3) -> str:
    import math

    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


VERDICT_STYLE = {
    "pass": "bold green",
    "residual_knowledge": "bold red",
    "over_unlearning": "bold yellow",
    "inconclusive": "bold blue",
}


def render_result(result, *, title: str | None = None) -> None:  # noqa: ANN001 - AuditResult
    """Summary table (probe × τ) and the verdict, on stdout."""
    if result.probes:
        rows = []
        for name, probe in result.probes.items():
            for row in probe.taus:
                s = row.stats
                band = row.null_band
                rows.append(
                    [
                        name,
                        f"{s.tau:.4f}",
                        f"{_fmt(s.R.value)} [{_fmt(s.R.lo)}, {_fmt(s.R.hi)}]",
                        f"[{_fmt(band.lo)}, {_fmt(band.hi)}]" if band else "—",
                        _fmt(s.p_m.value),
                        _fmt(s.p_a.value),
                        _fmt(s.frac_u_gt_v.value, 2),
                        _fmt(s.disagreement.value),
                        f"{_fmt(row.R_norm.value)}" if row.R_norm else "—",
                    ]
                )
        console.table(
            title or f"residual knowledge: {result.model.name}",
            ["probe", "τ", "R [95% CI]", "null band", "p_m", "p_a", "u>v̄", "disagree", "R_norm"],
            rows,
        )
        verdict_rows = [
            [
                name,
                f"{p.decisive[0]} = {_fmt(p.decisive[1].value)} [{_fmt(p.decisive[1].lo)}, {_fmt(p.decisive[1].hi)}]",
                f"[{_fmt(p.band.lo)}, {_fmt(p.band.hi)}]",
                p.verdict.kind + ("" if p.counts_toward_verdict else " (not counted)"),
            ]
            for name, p in result.probes.items()
        ]
        level = next(iter(result.probes.values())).pooled.level
        console.table(
            f"per-probe verdicts (pooled over the policy's τ range, {level:.1%} CI)",
            ["probe", "statistic", "null band", "verdict"],
            verdict_rows,
        )
    for name, sc in result.screening.items():
        rows = [
            [
                name,
                f"{r['tau']:.4f}",
                f"{_fmt(r['R_proxy']['value'])} [{_fmt(r['R_proxy']['lo'])}, {_fmt(r['R_proxy']['hi'])}]",
                _fmt(r["p_m_forget"]),
                _fmt(r["p_m_holdout"]),
            ]
            for r in sc.taus
        ]
        console.table(
            f"screening (no reference): {name}", ["probe", "τ", "R_proxy [95% CI]", "p_m forget", "p_m holdout"], rows
        )
    if result.flagged_samples:
        shown = result.flagged_samples[:10]
        console.table(
            f"forget samples with significant residual knowledge ({len(result.flagged_samples)}; first {len(shown)})",
            ["id", "label", "probes", "u", "v̄", "adj. p"],
            [[f.id, f.label, ",".join(f.probes), f"{f.u:.1f}", f"{f.v_bar:.1f}", f"{f.p_adjusted:.2g}"] for f in shown],
        )
    if result.panel:
        render_panel(result.panel)
    style = VERDICT_STYLE.get(result.verdict.kind, "bold")
    console.say(f"[{style}]verdict: {result.verdict.kind}[/] (exit code {result.exit_code})")
    console.say(result.verdict.reason, markup=False)
    console.say(result.config.policy.describe(), style="dim", markup=False)
    for note in result.notes:
        console.say(f"note: {note}", style="dim", markup=False)


def render_panel(panel: dict) -> None:
    """The standard unlearning panel (metrics/panel.py): one row for the model, one per reference."""

    def pct(e: dict | None, ci: bool = False) -> str:
        if not e or e.get("value") is None:
            return "—"
        return f"{100 * e['value']:.1f}" + (f" [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]" if ci else "")

    def auc(e: dict | None) -> str:
        return "—" if not e or e.get("value") is None else f"{e['value']:.2f}"

    entries = [panel["model"], *panel["references"]]
    reminiscence = any(e.get("reminiscence") for e in entries)
    rows = []
    for entry in entries:
        ref = entry.get("mia_reference")
        relearn = entry.get("relearn_epochs")
        row = [
            entry["name"],
            pct(entry.get("retain_acc")),
            pct(entry.get("unlearn_acc"), ci=True),
            pct(entry.get("test_acc")),
            pct(entry.get("mia_svc_unseen"), ci=True),
            f"{auc(entry.get('mia_svc_auc'))}/{auc(entry.get('mia_art_auc'))}",
            f"{ref['flagged']} ({auc(ref.get('auc'))})" if ref else "—",
            pct(entry.get("avg_gap"), ci=True),
            relearn["display"] if relearn else "—",
        ]
        if reminiscence:
            rea = (entry.get("reminiscence") or {}).get("samplewise") or {}
            added = rea.get("mia_reference_auc_added")
            row.append("—" if added is None else f"{added:+.3f}")
        rows.append(row)
    columns = [
        "model",
        "Retain",
        "Unlearn",
        "Test",
        "MIA unseen",
        "AUC SVC/ART",
        "ref-MIA (AUC)",
        "Avg Gap",
        "re-learn",
    ]
    console.table(
        "standard unlearning panel (% ; [95% CI]; all intervals in the JSON; references scored against the others)",
        columns + (["ReA ΔAUC"] if reminiscence else []),
        rows,
    )
    agree = (panel["model"].get("mia_reference") or {}).get("agreement_with_r_tau")
    if agree:
        console.say(
            f"reference-calibrated MIA vs r_τ flags: both {agree['both']}, only r_τ {agree['only_r_tau']}, "
            f"only MIA {agree['only_reference_mia']} (κ {agree['cohen_kappa']})",
            style="dim",
            markup=False,
        )
    for key, reason in panel["model"].get("not_computed", {}).items():
        console.say(f"panel: {key} not computed: {reason}", style="dim", markup=False)
    for note in panel.get("notes", []):
        console.say(f"panel: {note}", style="dim", markup=False)


ReportDirOpt = Annotated[
    Path | None, typer.Option("--report", help="Write report.json/.html/.md (see --format) into this folder.")
]
ReportFormatOpt = Annotated[
    str, typer.Option("--format", help="Report formats for --report, comma-separated: json, html, md.")
]
ThumbnailsOpt = Annotated[
    bool, typer.Option("--thumbnails/--no-thumbnails", help="Thumbnails of flagged image samples in the HTML.")
]


def _check_formats(report_dir: Path | None, report_format: str) -> None:
    """Fail on a bad --format before any work runs, not after."""
    if report_dir is not None:
        from .report import parse_formats

        parse_formats(report_format)


def _write_report(data: dict, report_dir: Path | None, report_format: str, thumbnails: object) -> None:
    if report_dir is None:
        return
    from .report import parse_formats, write_report

    written = write_report(data, report_dir, parse_formats(report_format), thumbnails=thumbnails)
    console.say("report written: " + ", ".join(str(p) for p in written.values()), style="dim", markup=False)


@app.command()
def check(
    model: Annotated[Path, typer.Argument(help="The unlearned checkpoint to audit.")],
    forget: Annotated[Path, typer.Option("--forget", help="The forget set (CSV or .npz).")],
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference",
            help="A model retrained without the forget set; repeat for several (K >= 2 measures the retraining spread).",
        ),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            help="Unseen samples of the forget set's classes: R_norm beside R, or reference-free screening.",
        ),
    ] = None,
    arch: ArchOpt = None,
    num_classes: NumClassesOpt = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    allow_pickle: AllowPickleOpt = False,
    data_root: DataRootOpt = None,
    dataset: DatasetOpt = None,
    max_rows: MaxRowsOpt = 500_000,
    taus: Annotated[
        str | None, typer.Option("--taus", help="τ grid: list (0,0.01) or start:stop:n (0:8/255:11, the default).")
    ] = None,
    probes: Annotated[
        str,
        typer.Option(
            "--probes",
            help="Comma-separated: gaussian, uniform-linf, uniform-l2, fgsm, fgsm-untargeted, pgd, pgd-untargeted, pgd-l2.",
        ),
    ] = "gaussian,fgsm,pgd",
    draws: Annotated[
        list[str] | None,
        typer.Option(
            "--draws",
            help="Draws per sample and τ (default 100); repeat as probe=N to override one probe, e.g. --draws pgd=10.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="One seed controls every random choice.")] = 0,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Rows per model call (default: from a memory budget).")
    ] = None,
    precision: Annotated[
        str,
        typer.Option("--precision", help="auto (bf16 only where it flips <= 0.1% of predictions), fp32, bf16, fp16."),
    ] = "auto",
    engine: Annotated[
        str, typer.Option("--engine", help="fused (ours) or art (ART's attacks; slower second opinion).")
    ] = "fused",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals.")] = 2000,
    ci_method: Annotated[str, typer.Option("--ci-method", help="bca or percentile.")] = "bca",
    alpha: Annotated[float, typer.Option("--alpha", help="Family-wise error rate of a false finding.")] = 0.05,
    fdr: Annotated[float, typer.Option("--fdr", help="False-discovery rate of the per-sample flags.")] = 0.05,
    tau_min: Annotated[float, typer.Option("--tau-min", help="Smallest τ that counts toward the verdict.")] = 0.0,
    tau_max: Annotated[
        float | None, typer.Option("--tau-max", help="Largest τ that counts toward the verdict.")
    ] = None,
    count_probes: Annotated[
        str | None, typer.Option("--count-probes", help="Probes that count toward the verdict (default: all run).")
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="Null-band margin with a single reference (seed spread unmeasured).")
    ] = 0.15,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    report_dir: ReportDirOpt = None,
    report_format: ReportFormatOpt = "json,html,md",
    thumbnails: ThumbnailsOpt = True,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Checkpoint partial counts here; rerunning the same command resumes."),
    ] = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="Forget samples per checkpoint / distributed work unit.")
    ] = 256,
    original: Annotated[
        Path | None, typer.Option("--original", help="The model before unlearning: adds re-learn time to the panel.")
    ] = None,
    retain: Annotated[
        Path | None, typer.Option("--retain", help="Retain samples (or a subset): Retain Acc and the MIAs' training.")
    ] = None,
    test: Annotated[
        Path | None, typer.Option("--test", help="Held-out test samples: Test Acc, the MIAs' unseen side, ROC.")
    ] = None,
    panel: Annotated[
        str,
        typer.Option(
            "--panel",
            help="Standard unlearning panel beside r_τ: standard (accuracies, MIA, Avg Gap, re-learn time), all (+ Reminiscence probe), none.",
        ),
    ] = "standard",
    verbose: VerboseOpt = False,
) -> int:
    """Audit MODEL: does it still know the forget set? Exit 0 pass, 1 finding, 2 bad input, 3 inconclusive.

    Under torchrun (``torchrun --nproc-per-node N -m unlearn_audit check ...``) the forget set is sharded across
    processes and rank 0 prints and writes the report."""
    import math

    from .audit import Audit, AuditConfig
    from .policy import Policy

    console.configure_logging(verbose)
    _check_formats(report_dir, report_format)
    default_draws, probe_draws = parse_draws(draws)
    policy = Policy(
        alpha=alpha,
        fdr=fdr,
        tau_min=tau_min,
        tau_max=math.inf if tau_max is None else tau_max,
        probes=tuple(p.strip() for p in count_probes.split(",")) if count_probes else None,
        single_reference_margin=margin,
    )
    config_kwargs: dict = dict(
        probes=tuple(p.strip() for p in probes.split(",") if p.strip()),
        seed=seed,
        device=device,
        batch_size=batch_size,
        precision=precision,
        engine=engine,
        bootstrap=bootstrap,
        ci_method=ci_method,
        policy=policy,
        probe_draws=probe_draws,
        panel=panel,
    )
    parsed_taus = parse_taus(taus)
    if parsed_taus is not None:
        config_kwargs["taus"] = parsed_taus
    if default_draws is not None:
        config_kwargs["draws"] = default_draws
    config = AuditConfig(**config_kwargs)
    from .distributed import current as current_dist

    dist_ctx = current_dist()
    with console.RichProgress(enabled=False if dist_ctx is not None and not dist_ctx.is_main else None) as progress:
        audit = Audit(
            model,
            references=reference or [],
            forget=forget,
            holdout=holdout,
            config=config,
            progress=progress,
            model_options=dict(
                arch=arch,
                num_classes=num_classes,
                input_shape=input_shape,
                mean=mean,
                std=std,
                allow_pickle=allow_pickle,
            ),
            sample_options=dict(data_root=data_root, dataset=dataset, max_rows=max_rows),
            command="unlearn-audit check " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["check"] else None,
            work_dir=work_dir,
            shard_size=shard_size,
            retain=retain,
            test=test,
            original=original,
        )
        for warning in list(audit.forget.warnings) + (list(audit.holdout.warnings) if audit.holdout else []):
            console.warn(warning)
        result = audit.run()
    from .distributed import current

    dist = current()
    if dist is not None and not dist.is_main:
        return result.exit_code
    render_result(result)
    if json_out is not None:
        result.to_json(json_out)
        console.say(f"JSON written to {json_out}", style="dim", markup=False)
    _write_report(result.to_dict(), report_dir, report_format, audit.forget if thumbnails else False)
    return result.exit_code


# --------------------------------------------------------------------------------------------------- report
@app.command()
def report(
    result: Annotated[Path, typer.Argument(help="A saved result: the JSON of check --json/--report or remediate.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output file: report.html, report.md or report.json.")
    ] = None,
    report_format: Annotated[
        str | None, typer.Option("--format", help="html, md or json (default: from the suffix of -o).")
    ] = None,
    thumbnails: Annotated[
        bool,
        typer.Option(
            "--thumbnails/--no-thumbnails", help="Thumbnails of flagged image samples (needs the forget set on disk)."
        ),
    ] = True,
) -> int:
    """Re-render a saved result (any readable schema version) as HTML, Markdown or current-schema JSON."""
    from .errors import ConfigError
    from .report import SUFFIXES, load_report, parse_formats, render

    if out is None:
        raise ConfigError(f"report {result}: give the output file with -o, e.g. -o report.html (or .md, .json)")
    if report_format is not None:
        fmt = parse_formats(report_format)
        if len(fmt) != 1:
            raise ConfigError(f"--format {report_format!r}: give exactly one format for -o {out}")
        chosen = fmt[0]
    elif out.suffix.lower() in SUFFIXES:
        chosen = SUFFIXES[out.suffix.lower()]
    else:
        raise ConfigError(
            f"-o {out}: cannot tell the format from {out.suffix or 'no suffix'!r}; use .html, .md, .json or --format"
        )
    doc = load_report(result)
    text = render(doc, chosen, thumbnails=thumbnails, search_dirs=[result.resolve().parent, Path.cwd()])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.say(f"{chosen} report written to {out} (verdict: {doc.get('verdict', doc.get('kind'))})", markup=False)
    return EXIT_OK


# -------------------------------------------------------------------------------------------------- unlearn
def parse_hparams(values: list[str] | None) -> dict[str, Any]:
    """``--param lr=0.01 --param k=3`` -> {"lr": 0.01, "k": 3}; values parse as JSON where they can."""
    from .errors import ConfigError

    out: dict[str, Any] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {value!r}: write name=value, e.g. --param lr=0.01")
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = raw
    return out


@app.command()
def unlearn(
    method: Annotated[
        str, typer.Argument(help="Method: retrain, gd, ngd, ga, neggrad+, eu-k, cf-k, scrub, ssd, fisher, ntk, cr, rurk, rea.")
    ],
    model: Annotated[Path, typer.Argument(help="The model to unlearn from (usually the original).")],
    forget: Annotated[Path, typer.Option("--forget", help="The forget set.")],
    retain: Annotated[Path, typer.Option("--retain", help="The retain set.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the unlearned model (.safetensors).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyper-parameter override name=value; repeat.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    arch: ArchOpt = None,
    num_classes: NumClassesOpt = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    allow_pickle: AllowPickleOpt = False,
    data_root: DataRootOpt = None,
    dataset: DatasetOpt = None,
    max_rows: MaxRowsOpt = 500_000,
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> int:
    """Run an unlearning method from the zoo and save the result with its method and hyper-parameters."""
    from .errors import ConfigError
    from .io.models import save_model
    from .unlearning import method_defaults
    from .unlearning import unlearn as run_method

    console.configure_logging(verbose)
    if out.suffix != ".safetensors":
        raise ConfigError(f"-o {out}: the output must be a .safetensors file")
    defaults = method_defaults(method)
    hparams = parse_hparams(param)
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
    forget_set = _samples(forget, loaded, data_root=data_root, dataset=dataset, max_rows=max_rows)
    retain_set = _samples(retain, loaded, data_root=data_root, dataset=dataset, max_rows=max_rows)
    with console.RichProgress() as progress:
        result = run_method(method, loaded, forget_set, retain_set, seed=seed, progress=progress, **hparams)
    digest = save_model(result, out)
    console.key_values(
        f"unlearn-audit unlearn {method}",
        [
            ("input", f"{model} ({loaded.meta.sha256})"),
            ("output", f"{out} ({digest})"),
            ("hyper-parameters", json.dumps({**defaults, **hparams}, sort_keys=True)),
            ("seed", seed),
        ],
    )
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ remediate
@app.command()
def remediate(
    model: Annotated[Path, typer.Argument(help="The model to remediate (the original or an unlearned model).")],
    forget: Annotated[Path, typer.Option("--forget", help="The forget set (CSV or .npz).")],
    retain: Annotated[Path, typer.Option("--retain", help="The retain set the remediation trains on.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the remediated model (.safetensors).")],
    reference: Annotated[
        list[Path] | None,
        typer.Option("--reference", help="A retrained reference that judges the result; repeat for several."),
    ] = None,
    test: Annotated[Path | None, typer.Option("--test", help="Held-out test set: report its accuracy cost.")] = None,
    method: Annotated[str, typer.Option("--method", help="rurk (default) or rea (ReA's dual-phase method).")] = "rurk",
    preset: Annotated[
        str | None, typer.Option("--preset", help="RURK λ preset: small (λ_f=λ_a=0.03) or cifar10 (λ_a=0.00045).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyper-parameter override name=value; repeat.")
    ] = None,
    budget: Annotated[
        float, typer.Option("--budget", help="Largest retain-accuracy drop (points) a success may cost.")
    ] = 2.0,
    search: Annotated[
        bool, typer.Option("--search", help="Bisect the method's strength (RURK: λ_a) until the audit passes.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the before/after JSON here.")] = None,
    report_dir: ReportDirOpt = None,
    report_format: ReportFormatOpt = "json,html,md",
    thumbnails: ThumbnailsOpt = True,
    taus: Annotated[str | None, typer.Option("--taus", help="τ grid of the audit (as in check).")] = None,
    probes: Annotated[str, typer.Option("--probes", help="Probes of the audit (as in check).")] = "gaussian,fgsm,pgd",
    count_probes: Annotated[
        str | None, typer.Option("--count-probes", help="Probes that count toward the verdict (default: all run).")
    ] = None,
    draws: Annotated[list[str] | None, typer.Option("--draws", help="Draws per sample and τ (as in check).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="One seed controls the audit and the remediation.")] = 0,
    arch: ArchOpt = None,
    num_classes: NumClassesOpt = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    allow_pickle: AllowPickleOpt = False,
    data_root: DataRootOpt = None,
    dataset: DatasetOpt = None,
    max_rows: MaxRowsOpt = 500_000,
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> int:
    """Remediate MODEL (RURK), re-run the same audit on the result, and save it. Exit 0 success, 1 not, 2 bad input."""
    from .audit import Audit, AuditConfig
    from .errors import ConfigError
    from .io.models import save_model

    console.configure_logging(verbose)
    if out.suffix != ".safetensors":
        raise ConfigError(f"-o {out}: the output must be a .safetensors file")
    if not reference:
        raise ConfigError("remediate needs at least one --reference (a model retrained without the forget set)")
    _check_formats(report_dir, report_format)
    hparams = parse_hparams(param)
    if preset is not None:
        hparams["preset"] = preset
    default_draws, probe_draws = parse_draws(draws)
    from .policy import Policy

    config_kwargs: dict = dict(
        probes=tuple(p.strip() for p in probes.split(",") if p.strip()),
        seed=seed,
        device=device,
        probe_draws=probe_draws,
        policy=Policy(probes=tuple(p.strip() for p in count_probes.split(",")) if count_probes else None),
    )
    parsed_taus = parse_taus(taus)
    if parsed_taus is not None:
        config_kwargs["taus"] = parsed_taus
    if default_draws is not None:
        config_kwargs["draws"] = default_draws
    options = dict(
        arch=arch, num_classes=num_classes, input_shape=input_shape, mean=mean, std=std, allow_pickle=allow_pickle
    )
    with console.RichProgress() as progress:
        audit = Audit(
            model,
            references=reference,
            forget=forget,
            config=AuditConfig(**config_kwargs),
            progress=progress,
            model_options=options,
            sample_options=dict(data_root=data_root, dataset=dataset, max_rows=max_rows),
        )
        result = audit.remediate(retain=retain, test=test, method=method, budget=budget, search=search, **hparams)
    digest = save_model(
        result.model,
        out,
        method=result.method,
        hparams=result.hyperparameters,
        parent_sha256=result.input_sha256,
        seed=result.seed,
    )
    render_result(result.before, title="before")
    render_result(result.after, title="after")
    console.say(result.summary(), markup=False)
    console.say(f"remediated model written to {out} ({digest})", style="dim", markup=False)
    if json_out is not None:
        result.to_json(json_out)
        console.say(f"JSON written to {json_out}", style="dim", markup=False)
    _write_report(json.loads(result.to_json()), report_dir, report_format, audit.forget if thumbnails else False)
    return result.exit_code


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
    out: Annotated[Path, typer.Option("--out", help="Where to write the demo's JSON reports.")] = Path("demo-output"),
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> int:
    """Run the whole loop offline on the bundled reference models (about a minute on a laptop CPU)."""
    import time

    from .demo import run_demo

    console.configure_logging(verbose)
    root = reference_models_dir(models_dir)
    console.say(
        "unlearn-audit demo: Fashion-MNIST, forget = 500 images of class 0, small CNN", style="bold", markup=False
    )
    console.say(
        "Auditing the original model, GD (fine-tuned on the retain set), GA (gradient ascent on the forget set) "
        "and an honest retrain, each against three other retrains. Probes: Gaussian, FGSM, PGD. Then GD is "
        "remediated with RURK and re-audited.",
        markup=False,
    )
    started = time.perf_counter()
    with console.RichProgress() as progress:
        outcome = run_demo(root, out, device=device, progress=progress)
    rows = []
    for name, result in outcome.results.items():
        expected = outcome.expected[name]
        rows.append(
            [
                name,
                result.model.metadata.get("method", "?"),
                *[f"{p.pooled.value:.3f} [{p.pooled.lo:.3f}, {p.pooled.hi:.3f}]" for p in result.probes.values()],
                result.verdict.kind,
                "yes" if result.verdict.kind == expected else f"NO (expected {expected})",
            ]
        )
    probe_names = list(next(iter(outcome.results.values())).probes)
    level = next(iter(next(iter(outcome.results.values())).probes.values())).pooled.level
    console.table(
        f"demo: R pooled over τ ({level:.1%} CI) and verdicts",
        ["model", "method", *[f"R {p}" for p in probe_names], "verdict", "as expected"],
        rows,
    )
    for name, result in outcome.results.items():
        console.say(f"{name}: {result.verdict.reason}", markup=False)
    fix = outcome.remediation
    if fix is not None:
        console.say(
            f"Remediation: RURK on {fix.before.model.name}, re-audited on the Gaussian probe: "
            f"{fix.before.verdict.kind} -> {fix.after.verdict.kind}, retain accuracy "
            f"{fix.retain_acc['before']:.1%} -> {fix.retain_acc['after']:.1%}. {fix.reason}",
            style="bold",
            markup=False,
        )
    console.say(
        f"JSON, HTML and Markdown reports in {out}/ (open {out}/gd/report.html; {time.perf_counter() - started:.0f} s)",
        style="dim",
        markup=False,
    )
    if not outcome.all_as_expected:
        console.warn("some verdicts differ from what the reference models were built to show")
        return EXIT_FINDING
    return EXIT_OK


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
    code = main()
    try:
        import torch.distributed as torch_dist

        if torch_dist.is_available() and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - shutting down; the exit code is what matters
        pass
    sys.exit(code)
