"""Probe names as the CLI and JSON spell them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConfigError
from .adversarial import FGSMProbe, PGDProbe
from .autopgd import AutoPGDProbe
from .base import Probe
from .query import SquareProbe
from .random import GaussianProbe, UniformBallProbe

PROBE_FACTORIES: dict[str, Callable[[], Probe]] = {
    "gaussian": GaussianProbe,
    "uniform-linf": lambda: UniformBallProbe("linf"),
    "uniform-l2": lambda: UniformBallProbe("l2"),
    "fgsm": FGSMProbe,
    "fgsm-untargeted": lambda: FGSMProbe(targeted=False),
    "pgd": PGDProbe,
    "pgd-untargeted": lambda: PGDProbe(targeted=False),
    "pgd-l2": lambda: PGDProbe(norm="l2", step_size="tau/4"),
    "autopgd": AutoPGDProbe,  # --engine art only
    "autopgd-untargeted": lambda: AutoPGDProbe(targeted=False),  # --engine art only
    "square": SquareProbe,  # query-based (ART's Square Attack): runs on served models too
}
DEFAULT_PROBES = ("gaussian", "fgsm", "pgd")


def make_probe(spec: str | Probe) -> Probe:
    if isinstance(spec, Probe):
        return spec
    key = spec.strip().lower()
    if key not in PROBE_FACTORIES:
        raise ConfigError(f"--probes: unknown probe {spec!r}; choose from {', '.join(PROBE_FACTORIES)}")
    return PROBE_FACTORIES[key]()


def make_probes(specs: Sequence[str | Probe] | str) -> list[Probe]:
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    probes = [make_probe(s) for s in specs]
    names = [p.name if p.config().get("targeted", True) else p.name + "-untargeted" for p in probes]
    if len(set(names)) != len(names):
        raise ConfigError(f"--probes: a probe is listed twice ({', '.join(names)})")
    if not probes:
        raise ConfigError("--probes: give at least one probe")
    return probes


def probe_label(probe: Probe) -> str:
    """The key a probe's results are stored under (``fgsm``, ``fgsm-untargeted``, ``pgd-l2``...)."""
    if probe.adversarial and not probe.config().get("targeted", True):
        return f"{probe.name}-untargeted"
    return probe.name


def check_engine(probes: Sequence[Probe], engine: str) -> None:
    """Fail before any work if a probe cannot run on ``engine`` (e.g. ``autopgd`` needs ``--engine art``)."""
    for probe in probes:
        if engine not in probe.engines:
            raise ConfigError(
                f"--probes: {probe_label(probe)} runs only with --engine {' or '.join(probe.engines)} "
                f"(got --engine {engine})"
            )


def default_draws(label: str, draws: int) -> int:
    """Draws of probe ``label`` unless ``--draws label=N`` says otherwise: ``draws``, or fewer for a probe that
    states its own default (``square``: each draw is a whole query-based attack)."""
    factory = PROBE_FACTORIES.get(label)
    own = getattr(factory, "default_draws", None) if factory is not None else None
    return min(draws, int(own)) if own is not None else draws
