"""``--engine art``: the same probes through the Adversarial Robustness Toolbox, a slower second opinion.

Each crafting model is wrapped in ART's ``PyTorchClassifier`` and the adversarial rows come from ART's own
attacks (``FastGradientMethod``, ``ProjectedGradientDescent``, and ``AutoProjectedGradientDescent`` for the
extra ``autopgd`` probe), one attack object per τ. Everything after crafting is shared with the fused engine:
the same row counting, the same :class:`~unlearn_audit.probes.counts.ProbeCounts`, so the rest of the audit
does not know which engine ran.

What is identical to the fused engine and what is not (keyed randomness, SPEC §2):

* random probes (``gaussian``, ``uniform-*``) are model-independent and go through the same keyed rows:
  their counts are identical to the fused engine in fp32;
* targeted FGSM draws its targets from the same keyed per-(sample, τ) generators, and ART's FGSM step is
  the same signed step: counts agree with the fused engine up to gradient round-off at sign changes;
* PGD and AutoPGD targets are keyed the same way, but their random starts come from ART, which draws them
  from numpy's global generator. The engine seeds that generator from the keyed seeds of each block of rows,
  so a run is reproducible for a given seed and batch size, but the starts differ from the fused engine's
  and change with ``--batch-size``: PGD counts agree with the fused engine statistically, not draw by draw.

The ART engine always runs in fp32 and never compiles the models (ART calls them itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..io.models import AuditableModel
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress, ProgressTask
from .adversarial import FGSMProbe, PGDProbe
from .autopgd import AutoPGDProbe, art_classifier, require_art
from .base import ChunkContext, Probe, RowBatch, RowBuffer, random_targets
from .counts import ProbeCounts
from .engine import Engine, EngineConfig
from .keys import generator_for
from .preparation import CraftingDecision, PrecisionDecision
from .reference_side import ReferenceSide


class _ArtRows(Probe):
    """A probe whose adversarial rows are crafted by ART instead of our fused code (same labels, same counting)."""

    def __init__(self, inner: Probe, engine: ArtEngine) -> None:
        self.inner = inner
        self.engine = engine
        self.name = inner.name
        self.adversarial = inner.adversarial  # type: ignore[misc]

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def describe(self) -> str:
        return self.inner.describe()

    def perturb(self, model, x, y, tau, generator, bounds=(0.0, 1.0), num_classes=None):
        return self.inner.perturb(model, x, y, tau, generator, bounds, num_classes)

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        if not self.inner.adversarial:
            yield from self.inner.rows(ctx)  # model-independent: the same keyed draws as the fused engine
            return
        assert ctx.crafting_model is not None
        classifier = self.engine.classifier(ctx.crafting_model)
        n, n_tau, c = ctx.x.shape[0], ctx.taus.shape[0], ctx.draws
        dev = ctx.device
        x_np = ctx.x.contiguous().cpu().numpy()
        y_np = ctx.y.cpu().numpy()
        buffer = RowBuffer(ctx.batch_size)
        for t in range(n_tau):
            tau = float(ctx.taus[t])
            if tau == 0.0:  # the clean input stands for every draw
                rows = (
                    ctx.x,
                    torch.arange(n, device=dev),
                    torch.full((n,), t, device=dev),
                    torch.full((n,), c, device=dev),
                )
                for batch in buffer.add(*rows):
                    yield RowBatch(*batch)
                continue
            labels = np.stack([self._labels(ctx, i, t, int(y_np[i])) for i in range(n)])  # [n, c]
            if isinstance(self.inner, FGSMProbe):
                # FGSM is deterministic given the label: one ART call per distinct (sample, label), weighted.
                pairs = sorted({(i, int(k)) for i in range(n) for k in labels[i]})
                sample = np.asarray([p[0] for p in pairs], dtype=np.int64)
                label = np.asarray([p[1] for p in pairs], dtype=np.int64)
                weight = np.asarray([int((labels[i] == k).sum()) for i, k in pairs], dtype=np.int64)
            else:
                sample = np.repeat(np.arange(n, dtype=np.int64), c)
                label = labels.reshape(-1).astype(np.int64)
                weight = np.ones_like(sample)
            attack = self._attack(classifier, tau, ctx.batch_size)
            for start in range(0, len(sample), ctx.batch_size):
                sl = slice(start, start + ctx.batch_size)
                # ART draws random starts from numpy's global generator: seed it from this block's keyed seeds.
                np.random.seed(int(ctx.unit_seeds[sample[sl][0], t]) % (2**32))
                x_adv = attack.generate(x_np[sample[sl]], y=label[sl])
                x_adv_t = torch.from_numpy(np.ascontiguousarray(x_adv, dtype=np.float32)).to(dev)
                idx = torch.as_tensor(sample[sl], device=dev)
                for batch in buffer.add(x_adv_t, idx, torch.full_like(idx, t), torch.as_tensor(weight[sl], device=dev)):
                    yield RowBatch(*batch)
        for batch in buffer.flush():
            yield RowBatch(*batch)

    def _labels(self, ctx: ChunkContext, i: int, t: int, y: int) -> np.ndarray:
        """The c labels of unit (i, t): keyed random targets (same stream as the fused engine on CPU) or y."""
        if not self.inner.config().get("targeted", True):
            return np.full(ctx.draws, y, dtype=np.int64)
        gen = generator_for(int(ctx.unit_seeds[i, t]), torch.device("cpu"))
        return random_targets(torch.tensor(y).expand(ctx.draws), ctx.num_classes, gen).numpy()

    def _attack(self, classifier: Any, tau: float, batch_size: int) -> Any:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        probe = self.inner
        if isinstance(probe, FGSMProbe):
            return FastGradientMethod(
                classifier, norm=np.inf, eps=tau, eps_step=tau, targeted=probe.targeted, batch_size=batch_size
            )
        if isinstance(probe, PGDProbe):
            alpha = float(probe._alpha(torch.tensor([tau]))[0])
            return ProjectedGradientDescent(
                classifier,
                norm=np.inf if probe.norm == "linf" else 2,
                eps=tau,
                eps_step=alpha,
                max_iter=probe.steps,
                targeted=probe.targeted,
                num_random_init=1 if probe.random_start else 0,
                batch_size=batch_size,
                verbose=False,
            )
        if isinstance(probe, AutoPGDProbe):
            return probe.attack(classifier, tau, batch_size)
        raise ConfigError(f"--engine art has no ART attack for probe {probe.name!r}; use --engine fused")


class ArtEngine(Engine):
    """:class:`Engine` whose adversarial rows are crafted by ART (fp32, uncompiled)."""

    kind = "art"

    def __init__(
        self,
        models: Sequence[AuditableModel],
        samples: Samples,
        config: EngineConfig,
        *,
        subjects: int = 1,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        require_art()
        requested = config.precision
        if requested in ("bf16", "fp16"):
            raise ConfigError(f"--precision {requested}: --engine art runs in fp32 only; use --precision fp32 or auto")
        if config.craft_precision in ("bf16", "fp16"):
            raise ConfigError(
                f"--craft-precision {config.craft_precision}: --engine art crafts in fp32 only; drop --craft-precision"
            )
        super().__init__(
            models,
            samples,
            dataclasses.replace(config, precision="fp32", craft_precision="fp32", compile=False),
            subjects=subjects,
            progress=progress,
        )
        self.precision_decision = PrecisionDecision("fp32", {}, 0, "--engine art runs in fp32")
        self._crafting_decision = CraftingDecision("fp32", {}, 0, "--engine art crafts with ART's attacks in fp32")
        self._classifiers: dict[int, Any] = {}

    def classifier(self, module: nn.Module) -> Any:
        key = id(module)
        if key not in self._classifiers:
            self._classifiers[key] = art_classifier(
                module, self.samples.input_shape, self.num_classes, self.samples.bounds, self.device
            )
        return self._classifiers[key]

    def run(
        self,
        probe: Probe,
        *,
        sample_range: tuple[int, int] | None = None,
        draws: int | None = None,
        reference_side: ReferenceSide | None = None,
        task: ProgressTask | None = None,
    ) -> ProbeCounts:
        return super().run(
            _ArtRows(probe, self), sample_range=sample_range, draws=draws, reference_side=reference_side, task=task
        )

    def reference_side(
        self, probe: Probe, *, draws: int | None = None, sample_range: tuple[int, int] | None = None
    ) -> ReferenceSide:
        return super().reference_side(_ArtRows(probe, self), draws=draws, sample_range=sample_range)
