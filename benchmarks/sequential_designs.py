"""The numbers behind the choice of the default sequential design (docs/methodology.md, "Sequential audits").

    PYTHONPATH=. .venv/bin/python benchmarks/sequential_designs.py     # about 10 minutes on 2 cores

1. **The bundled panel in five seeded orders.** The full audit's counts of the five Fashion-MNIST models (original,
   GD, GA, NegGrad+, held-out retrain against retrain-1…3; the README's GD settings) are computed once; each
   design then reads them in the order a sequential audit with seed 0…4 would (``sequential.seeded_order``) and
   stops by the audit's rule (a counted probe decided residual knowledge, or every counted probe a finding; a
   pass only at the last look). Printed: where each model stopped and whether its verdict equals the full audit's.
2. **The simulated audits of tests/unit/test_sequential_simulation.py** (same worlds and seeds): per design, the
   false findings, the power, and where the repeated intervals miss the truth (per look), for the default,
   O'Brien–Fleming on ⅛…1 and Pocock on ⅛…1.
3. **The bootstrap on small samples**: the coverage of one BCa interval of R on the first 80 of 320 simulated
   samples (honest audits), at 95 % and at the default design's first-look level, with 1,000 and 8,000 replicates.

Writes benchmarks/results/sequential_designs.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit import test_sequential_simulation as simulation  # noqa: E402
from tests.unit.sequential_sim import (  # noqa: E402
    DECIDED,
    FINDINGS,
    look_levels,
    simulate_counts,
    true_ratio,
    verdicts_only,
)
from unlearn_audit.analysis import StatsSettings, analyse_probe  # noqa: E402
from unlearn_audit.audit import Audit, AuditConfig  # noqa: E402
from unlearn_audit.policy import Policy, classify, combine  # noqa: E402
from unlearn_audit.sequential import DECISIONS, may_stop, seeded_order  # noqa: E402
from unlearn_audit.stats.sequential import DEFAULT_LOOKS, DEFAULT_SPENDING, design, look_sizes  # noqa: E402

FMNIST = ROOT / "reference_models" / "fmnist-small"
RESULTS = ROOT / "benchmarks" / "results" / "sequential_designs.json"
EIGHTHS = (0.125, 0.25, 0.5, 1.0)
DESIGNS = {
    f"{DEFAULT_SPENDING} (default), looks ¼…1": (DEFAULT_SPENDING, DEFAULT_LOOKS),
    "obrien-fleming, looks ⅛…1": ("obrien-fleming", EIGHTHS),
    "pocock, looks ⅛…1": ("pocock", EIGHTHS),
}


def panel_counts() -> dict[str, Any]:
    config = AuditConfig(
        seed=0, panel="none", taus=tuple(float(t) for t in np.linspace(0, 8 / 255, 5)), draws=20,
        probe_draws=(("pgd", 4),),
    )  # fmt: skip
    audit = Audit(
        references=[FMNIST / f"retrain-{i}.safetensors" for i in (1, 2, 3)], forget=FMNIST / "forget.csv",
        config=config, cache_dir=False,
    )  # fmt: skip
    models = {name: FMNIST / f"{name}.safetensors" for name in ("original", "gd", "ga", "neggradplus", "retrain-4")}
    return {name: (r.verdict.kind, r.counts) for name, r in audit.run_many(models).items()}


def panel_orders(counts: dict[str, Any], seeds: range) -> list[dict[str, Any]]:
    policy, settings, rows = Policy(), StatsSettings(2000, "bca", 0.95, 0), []
    for label, (spending, looks) in DESIGNS.items():
        for seed in seeds:
            for name, (full_kind, probes) in counts.items():
                n = len(next(iter(probes.values())).sample_ids)
                order = seeded_order(seed, n)
                sizes = look_sizes(n, looks, policy.min_samples)
                plan = design([s / n for s in sizes], policy.alpha / len(probes), spending)
                for k, size in enumerate(sizes):
                    decisions, verdicts = [], {}
                    for probe, c in probes.items():
                        found, _, _ = analyse_probe(c.take(order[:size]), 0, policy, settings, plan.levels[k], "")
                        _, estimate = found.decisive
                        decision = DECISIONS[classify(estimate.lo, estimate.hi, found.band)]
                        decisions.append(None if decision == "inside" and k + 1 < len(sizes) else decision)
                        verdicts[probe] = found.verdict
                    residual = any(v.kind == "residual_knowledge" for v in verdicts.values())
                    if may_stop(decisions, residual) or k + 1 == len(sizes):
                        break
                verdict = combine(verdicts).kind
                rows.append({"design": label, "seed": seed, "model": name, "samples": size, "of": n,
                             "verdict": verdict, "full": full_kind, "same": verdict == full_kind})  # fmt: skip
                print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return rows


def simulated() -> list[dict[str, Any]]:
    def designs(n: int) -> dict[str, Any]:
        out = {"full audit": (look_levels(n, (1.0,), simulation.ALPHA, DEFAULT_SPENDING, simulation.POLICY), DECIDED)}
        for label, (spending, looks) in DESIGNS.items():
            out[label] = (look_levels(n, looks, simulation.ALPHA, spending, simulation.POLICY), FINDINGS)
        return out

    simulation.designs = designs  # the test module's runner, with these designs
    rows = []
    for world in ("honest", "residual", "clear"):
        runs = simulation.simulated(world)
        for label in designs(runs.world.n):
            outcomes = runs.outcomes[label]
            misses: dict[int, int] = {}
            for outcome, truth in zip(outcomes, runs.truth, strict=True):
                for look in outcome.looks:
                    if not look.lo <= truth <= look.hi:
                        misses[look.samples] = misses.get(look.samples, 0) + 1
            every = sum(all(lk.lo <= r <= lk.hi for lk in o.looks) for o, r in zip(outcomes, runs.truth, strict=True))
            rows.append({
                "world": world, "design": label, "audits": len(outcomes),
                "findings": runs.rate(label, FINDINGS)[0],
                "residual_found": runs.rate(label, frozenset({"residual_knowledge"}))[0],
                "covered_at_stop": runs.covered(label)[0], "covered_at_every_look": every,
                "misses_per_look_size": misses, "share_used": round(runs.share_used(label), 3),
            })  # fmt: skip
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return rows


def small_sample_coverage(size: int = 80) -> list[dict[str, Any]]:
    world, rows = simulation.HONEST, []
    first_level = look_levels(world.n, DEFAULT_LOOKS, simulation.ALPHA, DEFAULT_SPENDING, simulation.POLICY)[0][1]
    for level in (0.95, first_level):
        for replicates in (1000, 8000):
            missed = 0
            with verdicts_only():
                for audit in range(simulation.AUDITS["honest"]):
                    rng = np.random.default_rng([16, len("honest"), audit])  # the simulation test's audits
                    sim = simulate_counts(world, rng)
                    truth = true_ratio(world, sim.model_effects)
                    seen = sim.counts.take(rng.permutation(world.n)[:size])
                    settings = StatsSettings(bootstrap=replicates, method="bca", seed=audit)
                    found, _, _ = analyse_probe(seen, 0, simulation.POLICY, settings, level, "simulated")
                    _, estimate = found.decisive
                    missed += not estimate.lo <= truth <= estimate.hi
            rows.append({"samples": size, "level": level, "replicates": replicates, "missed": missed,
                         "audits": simulation.AUDITS["honest"],
                         "nominal_misses": round(simulation.AUDITS["honest"] * (1 - level), 2)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    result = {"panel": panel_orders(panel_counts(), range(5)), "simulation": simulated()}
    result["small_sample_coverage"] = small_sample_coverage()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
