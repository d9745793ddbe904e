"""``--draws auto``: a pilot audit picks each probe's draws by precision (docs/methodology.md, "Draws by precision").

The pilot audits every subject against the same references on a seeded subset of the forget set
(``min(N, max(policy.min_samples, PILOT_SAMPLES))`` samples) with ``PILOT_DRAWS`` draws per probe (fewer for a
probe that states its own smaller default, never fewer than two). Adversarial rows are crafted on the subjects
only (the split needs no null band), so the pilot costs a fraction of the main run. With ``--precision auto`` the
pilot makes its own bf16 decision on its subset; a prediction flipped in a thousand barely moves a variance split.
From its counts, :mod:`unlearn_audit.stats.mcsplit` splits the verdict statistic's variance into its
between-sample and Monte-Carlo parts and picks the fewest draws that keep the Monte-Carlo share at most
``config.mc_share``; the largest choice over the subjects is kept per probe. A ``--draws probe=N`` override wins
for its probe (no pilot for it).

:func:`resolve_draws` is the one hook in :meth:`Audit.run_many`: the first run resolves the draws, sets them on
``audit.config`` (``resolved_draws``, read through ``config.draws_for``) and the ``Audit`` remembers the pilot
(``audit.draws_auto``), so later runs, ``run_many`` calls and remediation trials reuse the same draws (and the
reference side cached for them). The report's ``config`` stays what was asked (``draws_auto: true``); the
top-level ``draws_auto`` object says what was chosen and why.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .analysis import tau_mask
from .comparisons import subject_series
from .config import AuditConfig
from .errors import ConfigError
from .io.models import AuditableModel
from .probes import make_probes, probe_label
from .probes.registry import PROBE_FACTORIES, default_draws
from .progress import NULL_PROGRESS, phase
from .reference_cache import ReferenceCache
from .stats.mcsplit import MAX_DRAWS, MIN_DRAWS, DrawsChoice, choose_draws, split_variance

log = logging.getLogger(__name__)

PILOT_SAMPLES = 64
"""Forget samples in the pilot (at least the policy's ``min_samples``; all of them when the set is smaller)."""
PILOT_DRAWS = 20
"""Draws per probe in the pilot: enough for the within-sample variance of every (sample, τ) cell."""
_PILOT_STREAM = 0xD4A5  # spawn key of the pilot's sample choice under the audit seed


@dataclass(frozen=True)
class DrawsAuto:
    """What ``--draws auto`` chose: the pilot, and per probe its variance split and draws (or the override)."""

    samples: int
    """Forget samples in the pilot."""
    of: int
    """Forget samples in the whole set."""
    pilot_draws: dict[str, int]
    share: float
    choices: dict[str, tuple[str, DrawsChoice]]
    """Per probe the pilot chose for: (the subject whose split needed the most draws, its choice)."""
    overrides: dict[str, int]
    """Probes whose draws ``--draws probe=N`` set: no pilot for them."""

    @property
    def chosen(self) -> tuple[tuple[str, int], ...]:
        """The pilot's draws per probe (an override's probe is not among them)."""
        return tuple((name, choice.draws) for name, (_, choice) in self.choices.items())

    def to_dict(self) -> dict[str, Any]:
        probes: dict[str, Any] = {}
        for name, (subject, choice) in self.choices.items():
            probes[name] = {"source": "pilot", "subject": subject, **choice.to_dict()}
        for name, n in self.overrides.items():
            probes[name] = {"source": "override", "draws": int(n)}
        return {
            "pilot": {"samples": self.samples, "of": self.of, "draws": dict(self.pilot_draws)},
            "target_share": self.share,
            "probes": probes,
        }


def draw_bounds(label: str) -> tuple[int, int]:
    """``[lo, hi]`` for probe ``label``: [MIN_DRAWS, MAX_DRAWS], but a probe that states its own default draws
    (``square``: each draw is a whole query-based attack) is never given more than that default (or two)."""
    factory = PROBE_FACTORIES.get(label)
    own = getattr(factory, "default_draws", None) if factory is not None else None
    return MIN_DRAWS, MAX_DRAWS if own is None else max(MIN_DRAWS, min(MAX_DRAWS, int(own)))


def pilot_indices(n: int, config: AuditConfig) -> np.ndarray:
    """The pilot's forget-set rows, sorted: a choice keyed on the audit seed (its own stream of it)."""
    size = min(n, max(config.policy.min_samples, PILOT_SAMPLES))
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(_PILOT_STREAM,)))
    return np.sort(rng.choice(n, size=size, replace=False))


def resolve_draws(audit: Any, subjects: Sequence[AuditableModel]) -> None:
    """``audit``: an :class:`~unlearn_audit.audit.Audit` (not imported: it imports this module). With ``draws_auto``:
    run the pilot once per ``Audit`` (``audit.draws_auto`` keeps it) and set the draws it
    chose on ``audit.config`` (``resolved_draws``), where every part of the run reads them through
    ``config.draws_for``. Without ``draws_auto``: nothing."""
    cfg = audit.config
    if not cfg.draws_auto:
        return
    if audit.draws_auto is None:
        audit.draws_auto = run_pilot(audit, subjects)
    chosen = audit.draws_auto.chosen
    if cfg.resolved_draws != chosen:
        audit.config = dataclasses.replace(cfg, resolved_draws=chosen)


def run_pilot(audit: Any, subjects: Sequence[AuditableModel]) -> DrawsAuto:
    cfg = audit.config
    if not audit.references:
        raise ConfigError(
            "--draws auto needs --reference: the pilot splits R's variance against retrained references; "
            "give --draws N for a reference-free screening"
        )
    overrides = dict(cfg.probe_draws)
    labels = [probe_label(p) for p in make_probes(list(cfg.probes))]
    todo = [label for label in labels if label not in overrides]
    rows = pilot_indices(len(audit.forget), cfg)
    pilot_draws = {label: max(MIN_DRAWS, default_draws(label, PILOT_DRAWS)) for label in todo}
    choices: dict[str, tuple[str, DrawsChoice]] = {}
    if todo:
        with phase(audit.progress, "pilot for --draws auto", logger=log):
            sub = copy.copy(audit)  # the same models and references; its own config, set and memory-only cache
            sub.config = dataclasses.replace(
                cfg,
                probes=tuple(todo),
                draws_auto=False,
                probe_draws=tuple(pilot_draws.items()),
                resolved_draws=(),
                panel="none",
                bootstrap=200,
                craft_on_references=False,  # the split needs the subjects' rows only, not the null band's
                stop_early=False,  # the pilot's subset is small and seen whole
            )
            sub._partial_sides = {}
            sub.forget = audit.forget.subset(rows, source=f"{audit.forget.source}[pilot of {len(rows)}]")
            sub.holdout, sub.original, sub.work_dir = None, None, None
            sub.reference_cache = ReferenceCache.from_setting(False)
            sub.progress = NULL_PROGRESS
            sub.draws_auto = None
            results = sub.run_many({s.meta.name: s for s in subjects})
        for label in todo:
            lo, hi = draw_bounds(label)
            for name, result in results.items():
                counts = result.counts[label]
                series = subject_series(counts, 0)
                try:
                    split = split_variance(
                        series.u,
                        series.v,
                        counts.draws,
                        tau_mask(np.asarray(counts.taus, dtype=float), cfg.policy),
                        whole_class_threshold=cfg.policy.whole_class_threshold,
                    )
                except ValueError as exc:  # one forget sample, or no τ inside the policy's range
                    raise ConfigError(f"--draws auto, {label}: {exc}; give --draws N instead") from exc
                choice = choose_draws(split, cfg.mc_share, lo, hi)
                if label not in choices or choice.draws > choices[label][1].draws:
                    choices[label] = (name, choice)
    record = DrawsAuto(len(rows), len(audit.forget), pilot_draws, cfg.mc_share, choices, overrides)
    for label, (subject, choice) in choices.items():
        s = choice.split
        log.info(
            "--draws auto, %s: between %.3g, within %.3g per draw (%s, %s) -> %d draws, MC share %.1f%%%s",
            label,
            s.between,
            s.within,
            s.statistic,
            subject,
            choice.draws,
            100 * choice.achieved_share,
            f" (clipped at the {choice.clipped})" if choice.clipped else "",
        )
    return record
