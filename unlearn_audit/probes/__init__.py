"""Neighbourhood probes (SPEC §2) and the fused engine that turns them into counts."""

from .adversarial import FGSMProbe, PGDProbe
from .autopgd import AutoPGDProbe
from .base import Probe
from .counts import ProbeCounts
from .engine import DEFAULT_TAUS, Engine, EngineConfig
from .engines import ENGINES, make_engine, register_engine, run_probes
from .random import GaussianProbe, UniformBallProbe
from .registry import DEFAULT_PROBES, make_probe, make_probes, probe_label

__all__ = [
    "AutoPGDProbe",
    "DEFAULT_PROBES",
    "DEFAULT_TAUS",
    "ENGINES",
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
    "register_engine",
    "run_probes",
]
