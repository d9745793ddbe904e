"""Neighbourhood probes (SPEC §2) and the fused engine that turns them into counts."""

from .adversarial import FGSMProbe, PGDProbe
from .autopgd import AutoPGDProbe
from .base import Probe
from .engine import DEFAULT_TAUS, Engine, EngineConfig, ProbeCounts, make_engine, run_probes
from .random import GaussianProbe, UniformBallProbe
from .registry import DEFAULT_PROBES, make_probe, make_probes, probe_label

__all__ = [
    "AutoPGDProbe",
    "DEFAULT_PROBES",
    "DEFAULT_TAUS",
    "Engine",
    "EngineConfig",
    "FGSMProbe",
    "GaussianProbe",
    "PGDProbe",
    "Probe",
    "ProbeCounts",
    "UniformBallProbe",
    "make_engine",
    "make_probe",
    "make_probes",
    "probe_label",
    "run_probes",
]
