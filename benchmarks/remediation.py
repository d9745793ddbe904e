"""Remediation on the bundled Fashion-MNIST reference models, and what RURK costs against plain fine-tuning.

    .venv/bin/python benchmarks/remediation.py                 # results + cost, Markdown on stdout
    .venv/bin/python benchmarks/remediation.py --json out.json # also the raw numbers
    .venv/bin/python benchmarks/remediation.py --count-probes gaussian --skip-cost   # verdict on Gaussian only

Part 1 (results): for each subject (original, gd by default) and each remediator (RURK with the verify loop's
λ_a search; ReA dual-phase with its search over erase_lr), ``Audit.remediate`` re-runs the same audit (Gaussian
+ FGSM probes, τ in {0, 4/255, 8/255}, 10 draws, 500 bootstrap resamples, references retrain-2..4 as held-out
judges) and reports R before/after, verdicts, retain/test accuracy and wall time. Numbers in docs/remediation.md
come from this script.

Part 2 (cost): on the original model and the same retain subset, time the training loop alone of
(a) plain fine-tuning (GD on the retain set: the registry's ``gd`` at RURK's step count), (b) RURK with each
neighbour generator. Same steps, batch size, optimiser; reported as seconds per step and the ratio to GD.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from unlearn_audit import load_model, load_samples
from unlearn_audit.audit import Audit, AuditConfig
from unlearn_audit.policy import Policy
from unlearn_audit.unlearning import unlearn

ROOT = Path(__file__).resolve().parents[1] / "reference_models" / "fmnist-small"
CONFIG = AuditConfig(probes=("gaussian", "fgsm"), taus=(0.0, 4 / 255, 8 / 255), draws=10, seed=0, bootstrap=500)


def results(subjects: list[str], methods: list[str], count_probes: str | None) -> list[dict]:
    config = CONFIG
    if count_probes:
        config = dataclasses.replace(CONFIG, policy=Policy(probes=tuple(count_probes.split(","))))
    audit = Audit(
        references=[ROOT / f"retrain-{i}.safetensors" for i in (2, 3, 4)], forget=ROOT / "forget.npz", config=config
    )
    rows = []
    for subject in subjects:
        for method in methods:
            start = time.perf_counter()
            res = audit.remediate(
                ROOT / f"{subject}.safetensors",
                retain=ROOT / "retain_subset.npz",
                test=ROOT / "test.npz",
                method=method,
                search=True,
            )
            chosen = next((t for t in res.trials if t["success"]), None)
            rows.append(
                {
                    "subject": subject,
                    "method": method,
                    "success": res.success,
                    "before": res.before.verdict.kind,
                    "after": res.after.verdict.kind,
                    "R_before": {n: round(p.pooled.value, 3) for n, p in res.before.probes.items()},
                    "R_after": {n: round(p.pooled.value, 3) for n, p in res.after.probes.items()},
                    "retain_acc": res.retain_acc,
                    "test_acc": res.test_acc,
                    "trials": len(res.trials),
                    "knob": {k: v for k, v in res.hyperparameters.items() if k in ("lambda_neighbour", "erase_lr")},
                    "train_seconds_per_trial": round(
                        sum(t["seconds"] for t in res.trials) / max(len(res.trials), 1), 1
                    ),
                    "seconds": round(time.perf_counter() - start, 1),
                    "trial_log": [
                        {
                            "knob": t["hyperparameters"].get("lambda_neighbour", t["hyperparameters"].get("erase_lr")),
                            "verdict": t["verdict"],
                            "R": {k: round(v, 3) for k, v in t["R"].items()},
                            "retain_drop_points": round(t["retain_drop_points"], 2),
                        }
                        for t in res.trials
                    ],
                    "first_success": chosen is not None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def honest_retrain() -> dict:
    """The fingerprint of an honest retrain under the same audit: retrain-1 against retrain-2..4."""
    audit = Audit(
        references=[ROOT / f"retrain-{i}.safetensors" for i in (2, 3, 4)], forget=ROOT / "forget.npz", config=CONFIG
    )
    result = audit.run(ROOT / "retrain-1.safetensors")
    row = {
        "subject": "retrain-1",
        "verdict": result.verdict.kind,
        "R": {n: round(p.pooled.value, 3) for n, p in result.probes.items()},
        "band": {n: [round(p.band.lo, 3), round(p.band.hi, 3)] for n, p in result.probes.items()},
    }
    print(json.dumps(row), flush=True)
    return row


def cost(repeats: int = 3) -> list[dict]:
    model = load_model(ROOT / "original.safetensors", device="cpu")
    forget = load_samples(ROOT / "forget.npz")
    retain = load_samples(ROOT / "retain_subset.npz")
    steps = 2 * -(-len(retain) // 128)  # RURK's default: N = 2 epochs over the retain set
    runs = {
        "gd (plain fine-tuning)": ("gd", {"epochs": 2, "lr": 0.01}),
        "rurk gaussian (v=1)": ("rurk", {}),
        "rurk vulnerable (v=8)": ("rurk", {"neighbours": "vulnerable", "neighbour_draws": 8}),
        "rurk targeted-fgsm": ("rurk", {"neighbours": "targeted-fgsm"}),
        "rurk targeted-pgd (10 steps)": ("rurk", {"neighbours": "targeted-pgd"}),
    }
    rows = []
    for label, (method, hp) in runs.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            unlearn(method, model, forget, retain, seed=0, **hp)
            times.append(time.perf_counter() - start)
        best = min(times)
        rows.append(
            {"run": label, "steps": steps, "seconds": round(best, 2), "ms_per_step": round(1000 * best / steps, 1)}
        )
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["seconds"]
    for row in rows:
        row["vs_gd"] = round(row["seconds"] / base, 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--subjects", default="original,gd")
    parser.add_argument("--methods", default="rurk,rea")
    parser.add_argument("--count-probes", help="probes that count toward the verdict (default: all run)")
    parser.add_argument("--skip-results", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--honest-retrain", action="store_true", help="also audit retrain-1 the same way")
    args = parser.parse_args()
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    out: dict = {"environment": env}
    if args.honest_retrain:
        out["honest_retrain"] = honest_retrain()
    if not args.skip_results:
        out["results"] = results(args.subjects.split(","), args.methods.split(","), args.count_probes)
    if not args.skip_cost:
        out["cost"] = cost()
        print("\n| run | steps | seconds | ms/step | × GD |\n|---|---|---|---|---|")
        for row in out["cost"]:
            print(f"| {row['run']} | {row['steps']} | {row['seconds']} | {row['ms_per_step']} | {row['vs_gd']} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
