"""The standard unlearning panel (docs/metrics.md) on the bundled Fashion-MNIST reference models.

Run from the repository root::

    .venv/bin/python examples/panel_on_reference_models.py [--panel all] [--out example-output/panel]

Audits the original, GD, GA, NegGrad+ and an honest retrain (retrain-1) against three other retrains
(retrain-2..4), with the retain subset, the test set and the original model as panel inputs. The r_τ part is
cut down (Gaussian probe, 5 τ, 20 draws) because this script is about the panel; the panel itself runs at its
defaults. It prints one Markdown table (the numbers in docs/metrics.md come from it) and writes the JSON reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from unlearn_audit.audit import Audit, AuditConfig

ROOT = Path(__file__).resolve().parent.parent / "reference_models" / "fmnist-small"
SUBJECTS = ("original", "gd", "ga", "neggradplus", "retrain-1")
REFERENCES = ("retrain-2", "retrain-3", "retrain-4")


def pct(entry: dict[str, Any] | None, key: str) -> str:
    e = entry.get(key) if entry else None
    if not e or e.get("value") is None:
        return "—"
    return f"{100 * e['value']:.1f} [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"


def num(e: dict[str, Any] | None, digits: int = 3) -> str:
    if not e or e.get("value") is None:
        return "—"
    return f"{e['value']:.{digits}f} [{e['lo']:.{digits}f}, {e['hi']:.{digits}f}]"


def row(entry: dict[str, Any], panel: str) -> list[str]:
    ref = entry.get("mia_reference") or {}
    relearn = entry.get("relearn_epochs") or {}
    cells = [
        entry["name"],
        pct(entry, "retain_acc"),
        pct(entry, "unlearn_acc"),
        pct(entry, "test_acc"),
        pct(entry, "mia_svc_unseen"),
        num(entry.get("mia_svc_auc")),
        pct(entry, "mia_art_unseen"),
        num(entry.get("mia_art_auc")),
        f"{ref['flagged']}" if ref else "—",
        num(ref.get("auc")) if ref else "—",
        pct(entry, "avg_gap"),
        relearn.get("display", "—"),
    ]
    if panel == "all":
        rea = (entry.get("reminiscence") or {}).get("samplewise") or {}
        after = rea.get("mia_reference_after") or {}
        added = rea.get("mia_reference_auc_added")
        cells += [
            pct(rea, "unlearn_acc_after"),
            num(after.get("auc")),
            "—" if added is None else f"{added:+.3f}",
            str(after.get("flagged", "—")),
        ]
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", default="standard", choices=("standard", "all"))
    parser.add_argument("--out", type=Path, default=Path("example-output/panel"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    audit = Audit(
        references=[ROOT / f"{r}.safetensors" for r in REFERENCES],
        forget=ROOT / "forget.npz",
        retain=ROOT / "retain_subset.npz",
        test=ROOT / "test.npz",
        original=ROOT / "original.safetensors",
        config=AuditConfig(
            probes=("gaussian",),
            taus=tuple(float(t) for t in np.linspace(0, 8 / 255, 5)),
            draws=20,
            seed=args.seed,
            bootstrap=1000,
            panel=args.panel,
        ),
        command=f"examples/panel_on_reference_models.py --panel {args.panel} --seed {args.seed}",
    )
    results = audit.run_many({name: ROOT / f"{name}.safetensors" for name in SUBJECTS})
    args.out.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        result.to_json(args.out / f"{name}.json")
    head = [
        "model",
        "Retain Acc %",
        "Unlearn Acc %",
        "Test Acc %",
        "MIA SVC unseen %",
        "SVC AUC",
        "MIA ART unseen %",
        "ART AUC",
        "ref-MIA flagged",
        "ref-MIA AUC",
        "Avg Gap (pp)",
        "re-learn epochs",
    ]
    if args.panel == "all":
        head += ["ReA Unlearn Acc after %", "ReA ref-MIA AUC after", "ReA AUC added", "ReA flagged after"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = next(iter(results.values())).panel
    assert first is not None
    for name in SUBJECTS:
        panel = results[name].panel
        assert panel is not None
        lines.append("| " + " | ".join(row(panel["model"], args.panel)) + " |")
    for entry in first["references"]:
        lines.append("| " + " | ".join(row(entry, args.panel)) + " |")
    print("\n".join(lines))
    print()
    for name in SUBJECTS:
        panel = results[name].panel
        assert panel is not None
        ref = panel["model"].get("mia_reference") or {}
        for key, label in (("agreement_with_r_tau", "exact"), ("agreement_with_r_tau_calibrated", "calibrated")):
            agree = ref.get(key)
            if agree:
                keys = ("both", "only_r_tau", "only_reference_mia", "neither", "cohen_kappa")
                summary = {k: agree[k] for k in keys}
                print(
                    f"{name}: r_τ {label} flags {agree['both'] + agree['only_r_tau']}; agreement {json.dumps(summary)}"
                )
    for note in first["notes"]:
        print(f"note: {note}")
    print(f"\n({time.perf_counter() - started:.0f} s; JSON in {args.out}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
