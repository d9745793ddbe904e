"""ART's AutoPGD as an extra probe (``autopgd``), and the ART classifier wrapper both ART paths use.

AutoPGD (Croce & Hein 2020) has no fused implementation here: the probe only runs with ``--engine art``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import ChunkContext, Probe, RowBatch, random_targets


def require_art() -> None:
    try:
        import art  # noqa: F401
    except ImportError as exc:  # pragma: no cover - ART is a core dependency
        raise ConfigError(
            "--engine art needs the Adversarial Robustness Toolbox: pip install adversarial-robustness-toolbox"
        ) from exc


def art_classifier(
    module: nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    bounds: tuple[float, float] | None,
    device: torch.device,
) -> Any:
    """ART's ``PyTorchClassifier`` around an eval-mode model that outputs logits."""
    require_art()
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=module,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=int(num_classes),
        clip_values=bounds,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


class AutoPGDProbe(Probe):
    """ART's AutoPGD (Croce & Hein 2020) as an extra probe; only the ART engine can run it.

    ``steps`` iterations with AutoPGD's adaptive step size (starting at 2τ), ``restarts`` random starts,
    cross-entropy loss, targeted at a fresh random y' ≠ y per draw by default (like ``fgsm`` and ``pgd``).
    """

    name = "autopgd"
    adversarial = True
    engines: ClassVar[tuple[str, ...]] = ("art",)

    def __init__(
        self, norm: Literal["linf", "l2"] = "linf", steps: int = 20, restarts: int = 1, targeted: bool = True
    ) -> None:
        if norm not in ("linf", "l2"):
            raise ValueError(f"autopgd norm must be linf or l2, got {norm!r}")
        if steps < 1 or restarts < 1:
            raise ValueError("autopgd needs at least one step and one start")
        self.norm, self.steps, self.restarts, self.targeted = norm, int(steps), int(restarts), bool(targeted)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "norm": self.norm,
            "steps": self.steps,
            "restarts": self.restarts,
            "targeted": self.targeted,
        }

    def describe(self) -> str:
        ball = "ℓ∞" if self.norm == "linf" else "ℓ2"
        kind = "targeted at a random wrong label per draw" if self.targeted else "untargeted"
        return f"ART AutoPGD, {self.steps} steps in the {ball} ball of radius τ, {self.restarts} start(s), {kind}"

    def attack(self, classifier: Any, tau: float, batch_size: int) -> Any:
        from art.attacks.evasion import AutoProjectedGradientDescent

        return AutoProjectedGradientDescent(
            classifier,
            norm=np.inf if self.norm == "linf" else 2,
            eps=float(tau),
            eps_step=2.0 * float(tau),
            max_iter=self.steps,
            targeted=self.targeted,
            nb_random_init=self.restarts,
            batch_size=int(batch_size),
            loss_type="cross_entropy",
            verbose=False,
        )

    def perturb(self, model, x, y, tau, generator, bounds=(0.0, 1.0), num_classes=None):
        if model is None or num_classes is None:
            raise ValueError("autopgd needs the model it attacks and num_classes")
        if float(tau) == 0.0:
            return x.clone()
        labels = random_targets(y, num_classes, generator) if self.targeted else y
        classifier = art_classifier(model, tuple(x.shape[1:]), num_classes, bounds, x.device)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        np.random.seed(seed)
        out = self.attack(classifier, tau, x.shape[0]).generate(x.detach().cpu().numpy(), y=labels.cpu().numpy())
        return torch.from_numpy(out).to(x.device)

    def rows(self, ctx: ChunkContext) -> Iterator[RowBatch]:
        raise ConfigError(f"probe {self.name!r} runs on ART's AutoPGD: add --engine art")
