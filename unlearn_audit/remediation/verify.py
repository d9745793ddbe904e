"""The verify loop: remediate, re-run the SAME audit (config, references, forget set, seed), check the budget.

A remediation counts as a success only when the re-run audit says ``pass`` **and** retain accuracy fell by at
most ``budget`` percentage points. With ``search=True`` a small bisection over the method's strength knob
(RURK: ``lambda_neighbour`` = λ_a; ReA: ``erase_lr``, the erase phase's step size; its loss weights would
be cancelled by gradient clipping) runs until both hold, and every trial is recorded:
a trial whose audit still finds residual knowledge raises the knob, one that over-unlearns (or passes but costs
more than the budget) lowers it.

Trials are cheap to audit: the references' share of every probe is computed once (by the ``before`` audit) and
reused, and a search trial's audit is sequential (unlearn_audit/sequential.py): it looks at the forget set in
stages and stops at the first look where a counted probe is decided ``residual_knowledge`` (the overall
verdict is then ``residual_knowledge`` whatever the other probes show, so the search's direction is the same)
or every counted probe is decided; ``samples_used`` in the trial record says how far it got. Audits without
references, or under torchrun, stop after the first probe that finds residual knowledge instead
(``probes_skipped``). The chosen trial's audit is re-run as the user's audit when it was cut short this way, so
the report's ``after`` is always the same audit as ``before``, and the success is judged on it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from ..inference import predict
from ..io.hashing import sha256_state_dict
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress, format_seconds, milestone, phase
from .result import RemediationResult

if TYPE_CHECKING:
    from ..config import AuditConfig
    from ..results import AuditResult

log = logging.getLogger(__name__)

SEARCH_KNOB = {"rurk": "lambda_neighbour", "rea": "erase_lr"}
DEFAULT_MAX_TRIALS = 10


class AuditRunner(Protocol):
    """What the verify loop needs from :class:`unlearn_audit.audit.Audit`: its settings, its forget set, and the
    same audit run on another model. A protocol, so remediation never imports the audit flow that calls it."""

    config: AuditConfig
    forget: Samples

    def run(self, model: AuditableModel, *, stop_at_residual: bool = False) -> AuditResult: ...


def accuracy(model: AuditableModel, samples: Samples) -> float:
    if len(samples) == 0:
        return float("nan")
    return float((predict(model, samples.x) == samples.y).float().mean())


def resolved_hyperparameters(method: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters a method actually uses (RURK's preset resolved into λ values)."""
    from ..unlearning.registry import canonical, method_defaults

    if canonical(method) == "rurk":
        from .rurk import resolve_settings

        return resolve_settings(**hparams).to_dict()
    if canonical(method) == "rea":
        from .rea import ReASettings

        return ReASettings(**hparams).to_dict()
    return {**method_defaults(method), **hparams}


def _direction(result: AuditResult) -> float:
    """+1: still knows too much (strengthen); -1: over-unlearned (weaken); by the verdict, else by where R lies."""
    kind = result.verdict.kind
    if kind == "residual_knowledge":
        return 1.0
    if kind == "over_unlearning":
        return -1.0
    scores = []
    for p in result.probes.values():
        if not p.counts_toward_verdict:
            continue
        width = max(p.band.hi - p.band.lo, 1e-6)
        scores.append((p.pooled.value - 0.5 * (p.band.lo + p.band.hi)) / width)
    if not scores:
        return 0.0
    return 1.0 if sum(scores) > 0 else -1.0


def _trial_record(
    hparams: dict[str, Any],
    result: AuditResult,
    retain_after: float,
    test_after: float | None,
    drop: float,
    success: bool,
    seconds: float,
) -> dict[str, Any]:
    return {
        "hyperparameters": hparams,
        "verdict": result.verdict.kind,
        "R": {name: p.pooled.value for name, p in result.probes.items()},
        "retain_acc": retain_after,
        "test_acc": test_after,
        "retain_drop_points": drop,
        "success": success,
        "seconds": round(seconds, 2),
        "probes_skipped": list(result.provenance.get("stopped_early", {}).get("skipped", [])),
        **({"samples_used": result.sequential["samples_used"]} if result.sequential is not None else {}),
    }


def partial(result: AuditResult, config: AuditConfig) -> bool:
    """A search trial's audit is not the audit the user asked for: it skipped probes after a finding, or it was
    sequential (looks, alpha spending) where the user's audit is not."""
    return "stopped_early" in result.provenance or (result.sequential is not None and not config.stop_early)


def trial_outcome(name: str, trial: dict[str, Any], budget: float) -> str:
    """One line per finished trial: ``remediation trial 1/1: verdict pass, retain acc 97.10% (drop 0.40 of 2
    points allowed), ..., success, 31.2s``."""
    test = f", test acc {100 * trial['test_acc']:.2f}%" if trial["test_acc"] is not None else ""
    return (
        f"{name}: verdict {trial['verdict']}, retain acc {100 * trial['retain_acc']:.2f}% (drop "
        f"{trial['retain_drop_points']:.2f} of {budget:g} points allowed){test}, "
        f"{'success' if trial['success'] else 'not a success'}, {format_seconds(trial['seconds'])}"
    )


def remediate(
    audit: AuditRunner,
    model: AuditableModel,
    retain: Samples,
    test: Samples | None = None,
    *,
    method: str = "rurk",
    budget: float = 2.0,
    search: bool = False,
    max_trials: int = DEFAULT_MAX_TRIALS,
    seed: int | None = None,
    progress: Progress = NULL_PROGRESS,
    **hparams: Any,
) -> RemediationResult:
    """Remediate ``model`` with ``method``, re-audit it with ``audit`` and judge the result (see module doc)."""
    from ..device import resolve_device
    from ..unlearning.registry import canonical, unlearn

    if not math.isfinite(budget) or budget < 0:
        raise ConfigError(f"--budget {budget}: give the largest retain-accuracy drop allowed, in points (>= 0)")
    method = canonical(method)
    if search and method not in SEARCH_KNOB:
        raise ConfigError(f"--search: only {', '.join(SEARCH_KNOB)} have a strength knob to search; got {method}")
    if max_trials < 1:
        raise ConfigError(f"max_trials {max_trials}: need at least one trial")
    seed = audit.config.library_seed("remediation") if seed is None else int(seed)
    started = time.perf_counter()
    device = resolve_device(audit.config.device)
    input_sha = model.meta.sha256 or sha256_state_dict(model)
    base = resolved_hyperparameters(method, hparams)  # validates names before any work
    before = audit.run(model)
    retain_before = accuracy(model, retain)
    test_before = accuracy(model, test) if test is not None else None
    milestone(log, "before remediation: verdict %s, retain acc %.2f%%", before.verdict.kind, 100 * retain_before)

    def attempt(overrides: dict[str, Any]) -> tuple[AuditableModel, AuditResult, dict[str, Any], float, float | None]:
        """One trial as a phase of its own: its parameters logged as it starts (-v), its outcome as it ends."""
        name = f"remediation trial {len(trials) + 1}" + (f" of at most {max_trials}" if search else "/1")
        chosen = {**hparams, **overrides}
        given = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
        given = given or "its defaults"
        log.info("%s: %s with %s (resolved: %s)", name, method, given, resolved_hyperparameters(method, chosen))
        with phase(progress, name, logger=log):
            outcome = run_trial(overrides)
        milestone(log, "%s", trial_outcome(f"{name} ({method}, {given})", trials[-1], budget))
        return outcome

    def run_trial(overrides: dict[str, Any]) -> tuple[AuditableModel, AuditResult, dict[str, Any], float, float | None]:
        used = {**hparams, **overrides}
        clock = time.perf_counter()
        fixed = unlearn(method, model, audit.forget, retain, seed=seed, device=device, progress=progress, **used)
        resolved = resolved_hyperparameters(method, used)
        extra = dict(fixed.meta.extra)
        extra["hparams"] = json.dumps(resolved, sort_keys=True, default=str)
        extra["parent_sha256"] = input_sha
        fixed.meta = dataclasses.replace(
            fixed.meta, extra=extra, sha256=sha256_state_dict(fixed), name=f"{model.meta.name}+{method}"
        )
        after = audit.run(fixed, stop_at_residual=search)  # a search trial stops once residual knowledge decides
        retain_after = accuracy(fixed, retain)
        test_after = accuracy(fixed, test) if test is not None else None
        drop = 100.0 * (retain_before - retain_after)
        ok = after.verdict.kind == "pass" and drop <= budget
        trials.append(_trial_record(resolved, after, retain_after, test_after, drop, ok, time.perf_counter() - clock))
        return fixed, after, resolved, retain_after, test_after

    trials: list[dict[str, Any]] = []
    outcomes = [attempt({})]
    if search and not trials[-1]["success"]:
        knob = SEARCH_KNOB[method]
        value = float(base[knob])
        low: float | None = None  # strongest value that still left residual knowledge
        high: float | None = None  # weakest value that over-unlearned or overspent the budget
        for _ in range(max_trials - 1):
            last = outcomes[-1]
            over_budget = trials[-1]["retain_drop_points"] > budget and last[1].verdict.kind == "pass"
            direction = -1.0 if over_budget else _direction(last[1])
            if direction == 0:
                break
            if direction > 0:
                low = value if low is None else max(low, value)
            else:
                high = value if high is None else min(high, value)
            if low is not None and high is not None:
                value = math.sqrt(low * high)
            else:
                value = value * 2.0 if direction > 0 else value / 2.0
            if value <= 0:
                break
            outcomes.append(attempt({knob: value}))
            if trials[-1]["success"]:
                break
    chosen = _choose(trials)
    fixed, after, resolved, retain_after, test_after = outcomes[chosen]
    if partial(after, audit.config):  # the report's "after" is always the same audit as "before"
        after = audit.run(fixed)
        trials[chosen]["success"] = after.verdict.kind == "pass" and trials[chosen]["retain_drop_points"] <= budget
    success = bool(trials[chosen]["success"])
    drop = trials[chosen]["retain_drop_points"]
    if success:
        reason = (
            f"the same audit now says pass ({before.verdict.kind} before) and retain accuracy fell by "
            f"{drop:.2f} points (budget {budget:g})"
        )
    elif after.verdict.kind != "pass":
        reason = (
            f"the re-run audit says {after.verdict.kind}, not pass ({len(trials)} trial(s)): {after.verdict.reason}"
        )
    else:
        reason = f"the audit passes but retain accuracy fell by {drop:.2f} points, more than the budget of {budget:g}"
    return RemediationResult(
        method=method,
        hyperparameters=resolved,
        input_sha256=input_sha,
        model=fixed,
        before=before,
        after=after,
        retain_acc={"before": retain_before, "after": retain_after},
        test_acc={"before": test_before, "after": test_after},
        success=success,
        reason=reason,
        budget=float(budget),
        seed=seed,
        trials=trials,
        seconds=time.perf_counter() - started,
    )


def _choose(trials: list[dict[str, Any]]) -> int:
    """The first successful trial; else the passing trial that cost least; else the inconclusive trial that cost
    least; else the first trial (the requested hyper-parameters)."""
    for i, t in enumerate(trials):
        if t["success"]:
            return i
    for kind in ("pass", "inconclusive"):
        found = [i for i, t in enumerate(trials) if t["verdict"] == kind]
        if found:
            return min(found, key=lambda i: trials[i]["retain_drop_points"])
    return 0
