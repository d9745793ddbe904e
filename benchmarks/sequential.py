"""Sequential audits against the full audit (issue 16): same verdict? at what share of the work?

    PYTHONPATH=. .venv/bin/python benchmarks/sequential.py              # writes the "sequential" section of
                                                                         # docs/performance.md and a JSON record
    PYTHONPATH=. .venv/bin/python benchmarks/sequential.py --quick      # smoke run (numbers not meaningful)

Cases:

* the bundled Fashion-MNIST panel (``reference_models/fmnist-small``, half of class 0 forgotten): original, GD, GA,
  NegGrad+ and the held-out retrain (retrain-4), each against retrain-1…3;
* scikit-learn digits, a whole class forgotten (class 3) and 140 random samples across classes: an original and a
  held-out retrain against three retrains, all trained here in seconds (the models of
  tests/integration/test_forget_kinds.py).

Each model is audited twice with the same config and seed: the full audit and ``stop_early=True``. The table
gives both verdicts, the look the sequential audit stopped at, the samples it used, and
``evaluations_used / evaluations_full`` (model evaluations × rows, the JSON's ``sequential`` object).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import cpu_model, usable_cores, write_section  # noqa: E402
from unlearn_audit.audit import Audit, AuditConfig  # noqa: E402
from unlearn_audit.io.architectures import build_architecture  # noqa: E402
from unlearn_audit.io.datasets import open_dataset  # noqa: E402
from unlearn_audit.io.models import AuditableModel, wrap_model  # noqa: E402
from unlearn_audit.io.samples import samples_from_tensors  # noqa: E402
from unlearn_audit.sequential import evaluations  # noqa: E402
from unlearn_audit.stats.sequential import DEFAULT_SPENDING  # noqa: E402
from unlearn_audit.training import TrainConfig, train_classifier  # noqa: E402

FMNIST = ROOT / "reference_models" / "fmnist-small"
RESULTS = ROOT / "benchmarks" / "results" / "sequential.json"


def _digits_case(kind: str) -> tuple[dict[str, AuditableModel], list[AuditableModel], Any]:
    """The whole-class / random-sample digits scenario of tests/integration/test_forget_kinds.py."""
    ds = open_dataset("digits")
    x = torch.from_numpy(ds.take(np.arange(len(ds.labels)))).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(ds.labels).long()
    rng = np.random.default_rng(0)
    train = rng.permutation(len(y))[:1400]
    forget = train[y[train].numpy() == 3] if kind == "whole-class" else np.sort(rng.choice(train, 140, replace=False))
    retain = np.setdiff1d(train, forget)

    def fit(rows: np.ndarray, seed: int, name: str) -> AuditableModel:
        torch.manual_seed(seed)
        net = build_architecture("small-cnn", 10, (1, 8, 8))
        cfg = TrainConfig(epochs=30, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=64, seed=seed)
        train_classifier(net, x[rows], y[rows], cfg)
        return wrap_model(net, name=name, num_classes=10, input_shape=(1, 8, 8))

    subjects = {"original": fit(train, 0, "original"), "held-out retrain": fit(retain, 4, "retrain-4")}
    references = [fit(retain, s, f"retrain-{s}") for s in (1, 2, 3)]
    samples = samples_from_tensors(x[forget], y[forget], [f"digits:{i}" for i in forget])
    return subjects, references, samples


def _compare(
    case: str, subjects: dict[str, Any], references: list[Any], forget: Any, config: AuditConfig
) -> list[dict[str, Any]]:
    rows = []
    full_audit = Audit(references=references, forget=forget, config=config, cache_dir=False)
    clock = time.perf_counter()
    full = full_audit.run_many(subjects)
    full_seconds = time.perf_counter() - clock
    sequential_audit = Audit(
        references=references, forget=forget, config=dataclasses.replace(config, stop_early=True), cache_dir=False
    )
    auto_config = dataclasses.replace(config, stop_early=True, draws_auto=True)
    other = "pocock" if config.spending == "obrien-fleming" else "obrien-fleming"
    other_audit = Audit(
        references=references,
        forget=forget,
        config=dataclasses.replace(config, stop_early=True, spending=other),  # type: ignore[arg-type]
        cache_dir=False,
    )
    for name, model in subjects.items():
        clock = time.perf_counter()
        result = sequential_audit.run(model)
        seconds = time.perf_counter() - clock
        seq = result.sequential or {}
        spent_otherwise = other_audit.run(model)
        # both levers: --stop-early --draws auto, against the full audit at the configured draws (pilot included)
        auto = Audit(references=references, forget=forget, config=auto_config, cache_dir=False).run(model)
        pilot = auto.to_dict()["draws_auto"]
        n_taus, n_refs = len(config.taus), len(references)
        pilot_evaluations = sum(
            (1 + n_refs) * pilot["pilot"]["samples"] * n_taus * draws for draws in pilot["pilot"]["draws"].values()
        )  # one audited model; the pilot crafts on it only, and every reference scores its rows
        full_configured = sum(evaluations(c, len(c.sample_ids)) for c in full[name].counts.values())
        auto_used = auto.sequential["evaluations_used"] + pilot_evaluations
        rows.append(
            {
                "case": case,
                "model": name,
                "full": full[name].verdict.kind if name in full else None,
                "full_probes": {p: a.verdict.kind for p, a in full[name].probes.items()},
                "sequential": result.verdict.kind,
                "sequential_probes": {p: a.verdict.kind for p, a in result.probes.items()},
                "stopped_at_look": seq.get("stopped_at_look"),
                "looks": len(seq.get("planned_looks", [])),
                "samples_used": seq.get("samples_used"),
                "samples_total": seq.get("samples_total"),
                "evaluations_used": seq.get("evaluations_used"),
                "evaluations_full": seq.get("evaluations_full"),
                "share": seq["evaluations_used"] / seq["evaluations_full"] if seq.get("evaluations_full") else None,
                "seconds_sequential": round(seconds, 1),
                "looks_taken": seq.get("looks"),
                "other_spending": other,
                "other": spent_otherwise.verdict.kind,
                "other_share": spent_otherwise.sequential["evaluations_used"]
                / spent_otherwise.sequential["evaluations_full"],
                "auto": auto.verdict.kind,
                "auto_draws": {p: v["draws"] for p, v in pilot["probes"].items()},
                "auto_samples_used": auto.sequential["samples_used"],
                "auto_share": auto_used / full_configured,
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "looks_taken"}), flush=True)
    for row in rows:
        row["seconds_full_all_models"] = round(full_seconds, 1)
    return rows


def _table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "## Sequential audits: `check --stop-early` against the full audit",
        "",
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores, torch {meta['torch']}), "
        f"by `benchmarks/sequential.py` ({meta['settings']}). Design: {meta['design']}.",
        "",
        "| case | model | full audit | `--stop-early` | stopped at look | samples used | evaluations used / full "
        f"| `--spending {rows[0]['other_spending'] if rows else ''}` | its evaluations / full "
        "| `--stop-early --draws auto` | its draws | its evaluations / full (pilot included) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = "" if r["full"] == r["sequential"] else " **(differs)**"
        same_auto = "" if r["full"] == r["auto"] else " **(differs)**"
        same_other = "" if r["full"] == r["other"] else " **(differs)**"
        draws = ", ".join(f"{p} {d}" for p, d in r["auto_draws"].items())
        lines.append(
            f"| {r['case']} | {r['model']} | {r['full']} | {r['sequential']}{same} | {r['stopped_at_look']} of "
            f"{r['looks']} | {r['samples_used']} / {r['samples_total']} | {r['share']:.3f} | {r['other']}{same_other} "
            f"| {r['other_share']:.3f} | {r['auto']}{same_auto} "
            f"| {draws} | {r['auto_share']:.3f} |"
        )
    late = [r for r in rows if r["looks_taken"] and r["stopped_at_look"] == r["looks"] and r["looks"] > 1]
    late = [r for r in late if r["sequential"] in ("residual_knowledge", "over_unlearning")]
    if late:
        lines += ["", "Findings that needed every sample: where they stood at the look before the last.", ""]
    for r in late:
        before = r["looks_taken"][-2]
        stood = "; ".join(
            f"{name} {p['statistic']} = {p['value']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}] against "
            f"[{p['band'][0]:.3f}, {p['band'][1]:.3f}] ({p['decided'] or 'undecided'})"
            for name, p in before["probes"].items()
        )
        lines.append(
            f"- {r['case']}, {r['model']}, look {before['look']} ({before['samples']} samples, level "
            f"{100 * before['level']:.3f} %): {stood}."
        )
    lines += [
        "",
        "`--draws auto` runs a pilot (64 forget samples, 20 draws per probe) and picks each probe's draws so that "
        "Monte-Carlo noise is at most 10 % of the verdict statistic's variance (docs/methodology.md, \"Draws by "
        "precision\"); its column counts the pilot's evaluations and compares with the full audit at the configured "
        "draws.",
        "",
        "Evaluations are model evaluations × rows (every model that scores a perturbed row, crafting models "
        "included), counted the same way for both audits, whatever the reference cache holds. The full audit's "
        "interval level is 1 − α/P; a sequential audit's is the repeated-CI level of the look it stopped at "
        '(docs/methodology.md, "Sequential audits").',
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny draws and bootstrap")
    parser.add_argument("--draws", type=int, default=20, help="draws per sample and τ (the README's GD run: 20)")
    parser.add_argument("--pgd-draws", type=int, default=4, help="PGD's draws (the README's GD run: 4)")
    parser.add_argument("--taus", type=int, default=5, help="τ values from 0 to 8/255 (the README's GD run: 5)")
    parser.add_argument("--probes", default="gaussian,fgsm,pgd")
    parser.add_argument("--spending", default=DEFAULT_SPENDING)
    parser.add_argument("--cases", default="fmnist,digits-whole-class,digits-random")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    torch.set_num_threads(usable_cores())
    probes = tuple(args.probes.split(","))
    base = AuditConfig(
        probes=probes,
        taus=tuple(float(t) for t in np.linspace(0.0, 8 / 255, args.taus)),
        probe_draws=(("pgd", 2 if args.quick else args.pgd_draws),) if "pgd" in probes else (),
        draws=2 if args.quick else args.draws,
        bootstrap=200 if args.quick else 2000,
        panel="none",
        spending=args.spending,  # type: ignore[arg-type]
        seed=0,
    )
    rows: list[dict[str, Any]] = []
    cases = args.cases.split(",")
    if "fmnist" in cases:
        names = {
            "original": "original",
            "GD": "gd",
            "GA": "ga",
            "NegGrad+": "neggradplus",
            "held-out retrain": "retrain-4",
        }
        subjects = {label: FMNIST / f"{file}.safetensors" for label, file in names.items()}
        references = [FMNIST / f"retrain-{i}.safetensors" for i in (1, 2, 3)]
        rows += _compare("Fashion-MNIST, half of class 0", subjects, references, FMNIST / "forget.csv", base)
    for kind in ("whole-class", "random"):
        if f"digits-{kind}" in cases:
            subjects, references, samples = _digits_case(kind)
            label = "digits, whole class 3" if kind == "whole-class" else "digits, 140 random samples"
            rows += _compare(label, subjects, references, samples, base)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "torch": torch.__version__,
        "settings": f"probes {args.probes}, {base.draws} draws (PGD {base.draws_for('pgd')}), {args.taus} τ values "
        f"from 0 to 8/255, bootstrap {base.bootstrap}, seed 0: the README's GD run",
        "design": f"{args.spending} alpha spending, looks {', '.join(f'{t:g}' for t in base.looks)} of the forget set",
    }
    if args.quick or args.no_write:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    write_section(ROOT / "docs" / "performance.md", "sequential", _table(rows, meta))


if __name__ == "__main__":
    main()
