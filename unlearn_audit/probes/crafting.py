"""Which model crafts the adversarial probes' rows: white-box on each anchor, or transfer from one surrogate.

White-box (the default, SPEC §2): FGSM/PGD rows are crafted on the audited model, and on each reference for the
null band. A served model (io/remote) has no gradients, so when any compared model is query-only, or when the
auditor names a surrogate, gradient probes become **transfer probes**: one surrogate the auditor holds crafts
every row, and the audited model and every reference see the same rows. The comparison stays symmetric: the
null band (leave-one-out over the references) is built from the same transferred rows. A surrogate that is one
of the references (the default: the first local one) crafts only; it is left out of those comparisons, because
it would see rows crafted white-box on itself. Query-based probes craft on each anchor through its answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..io.models import AuditableModel
from ..io.remote.subject import refuse_fine_tuning, remote_record
from ..io.samples import Samples
from .base import Probe
from .counts import ProbeCounts
from .engine import Engine, EngineConfig, query_only


@dataclass(frozen=True)
class CraftingPlan:
    """``surrogate`` None: white-box. Otherwise gradient probes transfer from it; ``excluded`` is its position
    among the references when it is one of them (it is then left out of the transfer probes' comparisons)."""

    surrogate: AuditableModel | None = None
    excluded: int | None = None
    chosen_by: str = ""

    def transfers(self, probe: Probe) -> bool:
        return self.surrogate is not None and probe.adversarial and not probe.query_based

    def runners(
        self,
        engine: Engine,
        models: Sequence[AuditableModel],
        make: Callable[..., Engine],
        samples: Samples,
        config: EngineConfig,
        subjects: int,
    ) -> Callable[[Probe], tuple[Engine, list[str | None]]]:
        """``pick(probe)``: the engine that runs ``probe`` and the models' identities for its checkpoint key.
        Transfer probes get a second engine: the compared models (the surrogate reference left out), crafting on
        the surrogate (built on first use)."""
        plain = (engine, [m.meta.sha256 for m in models])
        made: list[tuple[Engine, list[str | None]]] = []

        def pick(probe: Probe) -> tuple[Engine, list[str | None]]:
            if self.surrogate is None or not self.transfers(probe):
                return plain
            if not made:
                keep = [m for i, m in enumerate(models) if self.excluded is None or i != subjects + self.excluded]
                transfer = make(keep, samples, config, subjects=subjects)
                transfer.use_surrogate(self.surrogate)
                made.append((transfer, [m.meta.sha256 for m in keep] + [f"surrogate:{self.key}"]))
            return made[0]

        return pick

    @property
    def key(self) -> str | None:
        """The surrogate's identity, for checkpoint keys of transfer counts."""
        return None if self.surrogate is None else f"{self.surrogate.meta.sha256}:{self.excluded}"

    def annotate(
        self,
        results: Mapping[str, Any],
        subjects: Sequence[AuditableModel],
        references: Sequence[AuditableModel],
        counts: Mapping[str, ProbeCounts],
    ) -> None:
        """Each result's ``remote`` section (served models, access modes, queries used) and transfer note."""
        for result in results.values():
            result.remote = remote_record(subjects, references, counts, self.surrogate)
            result.notes.extend(self.notes(counts))

    def notes(self, counts: Mapping[str, ProbeCounts]) -> list[str]:
        """The report's note on the transfer probes among ``counts`` (none if nothing transferred)."""
        transferred = [name for name, c in counts.items() if c.access == "transfer"]
        if self.surrogate is None or not transferred:
            return []
        left_out = " It crafts only: it is left out of these probes' comparisons." if self.excluded is not None else ""
        return [
            f"{', '.join(transferred)} ran as transfer probes: crafted white-box on the surrogate "
            f"{self.surrogate.meta.name} ({self.chosen_by}), and the audited model and every reference saw the same "
            f"rows, so the null band is built the same way.{left_out} A transfer probe asks a weaker question than a "
            "white-box one; its R is not comparable with a white-box R."
        ]


def plan_crafting(
    subjects: Sequence[AuditableModel],
    references: Sequence[AuditableModel],
    surrogate: AuditableModel | None,
    probes: Sequence[Probe],
    fine_tuned: object = False,  # the panel fine-tunes the subjects: --original given, or --panel all
) -> CraftingPlan:
    """White-box unless a compared model is query-only or a surrogate is given (see the module docstring).
    ``fine_tuned`` (truthy when the panel fine-tunes the subjects) is refused for a served subject."""
    refuse_fine_tuning(subjects, bool(fine_tuned))
    gradient_probes = [p for p in probes if p.adversarial and not p.query_based]
    if not gradient_probes:
        return CraftingPlan()
    shas = [r.meta.sha256 for r in references]
    if surrogate is not None:
        excluded = shas.index(surrogate.meta.sha256) if surrogate.meta.sha256 in shas else None
        plan = CraftingPlan(surrogate, excluded, "given as --surrogate")
    elif any(query_only(m) for m in [*subjects, *references]):
        local = [i for i, r in enumerate(references) if not query_only(r)]
        if not local:
            raise ConfigError(
                f"{gradient_probes[0].name}: a served model has no gradients, so this probe runs as a transfer probe "
                "crafted on a model you hold; pass --surrogate MODEL or a local --reference, or drop it from --probes"
            )
        plan = CraftingPlan(references[local[0]], local[0], "the first local reference")
    else:
        return CraftingPlan()
    if plan.excluded is not None and len(references) < 2:
        raise ConfigError(
            f"surrogate {plan.surrogate.meta.name if plan.surrogate else ''} is the only reference: transfer probes "
            "leave the surrogate out of their comparisons, so they need a second --reference, or --surrogate MODEL "
            "(a model of your own, e.g. another retrain seed), or run only the random probes (--probes gaussian)"
        )
    return plan
