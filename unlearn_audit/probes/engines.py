"""Engines by name (``--engine``): ``fused`` (ours) and ``art`` (ART's attacks, a slower second opinion).

The registry is the one place that knows every engine, so the fused engine never imports the ART engine that
builds on it. ``register_engine(name, cls, force=True)`` replaces an entry on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress
from .art_engine import ArtEngine
from .base import Probe
from .counts import ProbeCounts
from .engine import Engine, EngineConfig
from .registry import probe_label

ENGINES: dict[str, type[Engine]] = {}


def register_engine(name: str, engine: type[Engine], *, force: bool = False) -> None:
    """Make ``engine`` available as ``--engine name``; ``force=True`` replaces an existing entry."""
    if name in ENGINES and not force:
        raise ConfigError(f"engine {name!r} is already registered; pass force=True to replace it")
    ENGINES[name] = engine


register_engine("fused", Engine)
register_engine("art", ArtEngine)


def make_engine(
    models: Sequence[AuditableModel],
    samples: Samples,
    config: EngineConfig,
    *,
    subjects: int = 1,
    progress: Progress = NULL_PROGRESS,
) -> Engine:
    """The engine ``config.engine`` names: ``fused`` (ours) or ``art`` (ART's attacks, a slower second opinion)."""
    if config.engine not in ENGINES:
        raise ConfigError(f"--engine {config.engine!r}: use {' or '.join(ENGINES)}")
    return ENGINES[config.engine](models, samples, config, subjects=subjects, progress=progress)


def run_probes(
    probes: Sequence[Probe],
    models: Sequence[AuditableModel],
    samples: Samples,
    config: EngineConfig,
    *,
    subjects: int = 1,
    progress: Progress = NULL_PROGRESS,
) -> dict[str, ProbeCounts]:
    """Convenience: one engine, several probes."""
    engine = make_engine(models, samples, config, subjects=subjects, progress=progress)
    return {probe_label(p): engine.run(p) for p in probes}
