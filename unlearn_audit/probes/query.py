"""A query-based probe: ART's Square Attack (Andriushchenko et al. 2020), crafted from the answers of the model
it attacks, never its gradients, so it runs on a served model (docs/remote.md).

``square``: untargeted, in the ℓ∞ ball of radius τ, ``iterations`` random square updates that are kept when
they lower the margin loss (the true class's score against the best other), ``restarts`` restarts. Like the
white-box probes it crafts on each anchor: the audited model through its answers, and each reference the same
way for the null band, so the comparison stays symmetric. Image inputs only (ART's Square Attack needs
``[N, C, H, W]``).

Query cost, stated in the probe's JSON (``query_cost``): per forget sample, τ > 0 and draw at most
``(iterations + 2) · restarts`` rows reach the endpoint (one to find the samples still classified correctly,
one for the initial stripes, one per iteration); rows the attack asks about twice are answered from the cache.
Its draws default to ``DEFAULT_DRAWS`` (``--draws square=N`` sets them), because each draw is a whole attack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError
from .autopgd import art_classifier
from .base import ChunkContext, Probe, RowBatch, RowBuffer

DEFAULT_DRAWS = 1


class SquareProbe(Probe):
    """ART's Square Attack at radius τ (ℓ∞, untargeted), from the attacked model's scores."""

    name = "square"
    adversarial = True
    query_based = True
    default_draws: ClassVar[int] = DEFAULT_DRAWS
    engines: ClassVar[tuple[str, ...]] = ("fused",)  # ART crafts it in either case; the ART engine adds nothing

    def __init__(self, iterations: int = 20, restarts: int = 1, p_init: float = 0.3) -> None:
        if iterations < 1 or restarts < 1 or not 0 < p_init <= 1:
            raise ValueError("square needs iterations >= 1, restarts >= 1 and 0 < p_init <= 1")
        self.iterations, self.restarts, self.p_init = int(iterations), int(restarts), float(p_init)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "iterations": self.iterations,
            "restarts": self.restarts,
            "p_init": self.p_init,
            "query_cost": {"max_rows_per_sample_tau_draw": self.max_rows_per_attack},
        }

    @property
    def max_rows_per_attack(self) -> int:
        return (self.iterations + 2) * self.restarts

    def describe(self) -> str:
        return (
            f"ART Square Attack (query-based), {self.iterations} iterations × {self.restarts} restart(s) in the ℓ∞ "
            f"ball of radius τ, untargeted; at most {self.max_rows_per_attack} queries per sample, τ > 0 and draw"
        )

    def _attack(self, classifier: Any, tau: float, batch_size: int) -> Any:
        from art.attacks.evasion import SquareAttack

        return SquareAttack(
            classifier,
            norm=np.inf,
            eps=float(tau),
            max_iter=self.iterations,
            p_init=self.p_init,
            nb_restarts=self.restarts,
            batch_size=int(batch_size),
            verbose=False,
        )

    def _run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, tau: float, seed: int,
             bounds: tuple[float, float] | None, num_classes: int, batch_size: int) -> torch.Tensor:  # fmt: skip
        if x.dim() != 4:
            raise ConfigError(
                f"probe square: ART's Square Attack needs image inputs [N, C, H, W], got rows of shape "
                f"{list(x.shape[1:])}; drop square from --probes"
            )
        classifier = art_classifier(model, tuple(x.shape[1:]), num_classes, bounds or (0.0, 1.0), x.device)
        np.random.seed(seed % (2**32))  # ART draws the squares from numpy's global generator
        labels = np.eye(num_classes, dtype=np.float32)[y.cpu().numpy()]
        out = self._attack(classifier, tau, batch_size).generate(x.detach().cpu().numpy(), y=labels)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(x.device)

    def perturb(self, model, x, y, tau, generator, bounds=(0.0, 1.0), num_classes=None):
        if model is None or num_classes is None:
            raise ValueError("square needs the model it attacks and num_classes")
        if float(tau) == 0.0:
            return x.clone()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        return self._run(model, x, y, float(tau), seed, bounds, num_classes, x.shape[0])

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        if ctx.crafting_model is None:
            raise ConfigError("probe square needs the model it attacks")
        n, dev = ctx.x.shape[0], ctx.device
        buffer = RowBuffer(ctx.batch_size)
        samples = torch.arange(n, device=dev)
        for t in range(ctx.taus.shape[0]):
            tau = float(ctx.taus[t])
            if tau == 0.0:  # the clean input stands for every draw
                parts = [(ctx.x, samples, torch.full_like(samples, t), torch.full_like(samples, ctx.draws))]
            else:  # one whole attack per draw, seeded from the chunk's first unit key, τ and the draw
                parts = []
                for draw in range(ctx.draws):
                    seed = int(ctx.unit_seeds[0, t]) * 1_000_003 + draw
                    x_adv = self._run(ctx.crafting_model, ctx.x, ctx.y, tau, seed, ctx.bounds, ctx.num_classes,
                                      ctx.batch_size)  # fmt: skip
                    parts.append((x_adv, samples, torch.full_like(samples, t), torch.ones_like(samples)))
            for columns in parts:
                for batch in buffer.add(*columns):
                    yield RowBatch(*batch)
        for batch in buffer.flush():
            yield RowBatch(*batch)
