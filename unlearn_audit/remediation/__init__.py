"""Remediation that proves itself: RURK (and ReA's dual-phase method), then the same audit again.

``unlearn("rurk", model, forget, retain, seed=0, **hp)`` runs RURK through the method registry;
``Audit.remediate(model, retain=...)`` runs it and re-audits (see :mod:`.verify`).
"""

from ..unlearning.registry import register_method
from .rea import ReASettings, rea, run_rea
from .result import RemediationResult
from .rurk import NEIGHBOURS, PRESETS, RURKLog, RURKSettings, resolve_settings, run_rurk, rurk
from .verify import remediate

register_method("rurk", rurk)
register_method("rea", rea)

__all__ = [
    "NEIGHBOURS",
    "PRESETS",
    "RURKLog",
    "RURKSettings",
    "ReASettings",
    "RemediationResult",
    "rea",
    "remediate",
    "resolve_settings",
    "rurk",
    "run_rea",
    "run_rurk",
]
