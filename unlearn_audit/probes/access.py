"""Who crafts a probe's rows (:class:`Crafting`): every anchor on itself (white-box), one surrogate for all
(transfer), each anchor through its answers (query-based), or nobody (random probes: predictions only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from .base import Probe
from .preparation import PreparedModel

Access = Literal["white-box", "transfer", "query-based", "predictions-only"]


@dataclass(frozen=True)
class Crafting:
    """Who crafts an adversarial probe's rows: the anchors of :class:`~unlearn_audit.probes.counts.ProbeCounts`.

    ``white-box`` (no surrogate, the default): every anchor crafts its own rows, the audited model and, for the
    null band, each reference, and the other models see them. ``transfer`` (a surrogate): one model outside the
    compared ones crafts every row, and the audited model and every reference see the same rows, so the counts
    have the shape of a random probe's and the null band is built the same way (leave-one-out over the
    references). Random probes never craft: their access is ``predictions-only``.
    """

    surrogate: PreparedModel | None = None

    def access(self, probe: Probe) -> Access:
        if not probe.adversarial:
            return "predictions-only"
        if probe.query_based:  # crafted by querying each anchor itself: per anchor, like white-box
            return "query-based"
        return "white-box" if self.surrogate is None else "transfer"

    def crafter(self, probe: Probe, anchor: PreparedModel) -> PreparedModel:
        """The model whose gradients (or answers) craft the rows anchored at ``anchor``."""
        return self.surrogate if self.surrogate is not None and self.access(probe) == "transfer" else anchor

    def record(self, probe: Probe) -> dict[str, str]:
        """What the counts' ``probe_config`` says about the crafting (the JSON's ``access``)."""
        access = self.access(probe)
        return {
            "access": access,
            **({"surrogate": self.surrogate.name} if access == "transfer" and self.surrogate else {}),
        }


def query_only(model: nn.Module) -> bool:
    """A model the engine can only query (a served model, io/remote): no gradients, its own precision."""
    return bool(getattr(getattr(model, "net", model), "query_only", False))
