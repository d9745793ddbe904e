"""One training loop, shared by the reference-model builder, the method zoo, remediation and the metrics.

:func:`run_sgd` is "SGD over batches with a per-step loss": the caller states the loss of one step (a function
of the batch's row indices) and the loop does the rest in a fixed order, so every method draws its random
numbers in the same sequence:

    for each epoch:  train_mode(model)
        for each batch of rows (shuffled by ``order``, a generator seeded from ``cfg.seed``):
            stop if ``max_steps`` steps are done
            draw the paired batch (``paired_rows``: a second set cycled alongside, seeded ``cfg.seed + 1``)
            set the learning rate from ``cfg.schedule``
            loss = step_loss(batch); zero the gradients; backward
            grad_hook(model, step); clip the gradient norm at ``grad_clip`` (if > 0); optimiser step
            advance the progress task; show ``info(batch, loss)``; stop if ``stop_when(batch, loss)``

Deterministic for a fixed seed, device and thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .inference import model_device
from .progress import NULL_PROGRESS, Progress, ProgressTask

SCHEDULES = ("cosine", "constant", "linear")


def seeded_generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def batches(
    n: int, batch_size: int, generator: torch.Generator | None, *, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, shuffled by ``generator`` (None: in order)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def cycle_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches, reshuffled every pass (for pairing a small set with a large one)."""
    while True:
        yield from batches(n, batch_size, generator)


@dataclass(frozen=True)
class SGDSettings:
    """The SGD knobs a fine-tuning method exposes as hyper-parameters (defaults: the paper's fine-tune)."""

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128

    def config(self, seed: int, schedule: str = "cosine") -> TrainConfig:
        return TrainConfig(self.epochs, self.lr, self.momentum, self.weight_decay, self.batch_size, seed, schedule)


@dataclass(frozen=True)
class TrainConfig(SGDSettings):
    """One run of :func:`run_sgd`: the SGD knobs, the seed of the batch order, and the learning-rate schedule.

    ``schedule``: ``cosine`` (from ``lr`` to 0 over the run), ``constant``, or ``linear`` (from ``lr`` to 0).
    """

    lr: float = 0.05
    seed: int = 0
    schedule: str = "cosine"


def make_sgd(model: nn.Module, cfg: SGDSettings) -> torch.optim.SGD:
    """SGD over the parameters that require a gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except modules whose parameters are all frozen, which stay in eval mode."""
    model.train()
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            module.eval()


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of step ``step`` (0-based) of a run of ``total`` steps."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "linear":
        return cfg.lr * (1 - step / max(total, 1))
    if cfg.schedule != "cosine":
        raise ConfigError(f"schedule={cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if total <= 1:
        return cfg.lr
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))


def planned_steps(rows: int, cfg: TrainConfig, max_steps: int | None = None) -> int:
    """Steps of a :func:`run_sgd` run that is not stopped early (the schedule's and the progress bar's total)."""
    total = cfg.epochs * math.ceil(rows / cfg.batch_size)
    return total if max_steps is None else min(total, max_steps)


@dataclass(frozen=True)
class Batch:
    """One step of :func:`run_sgd`: its 0-based index, the row indices of the batch and of the paired batch."""

    step: int
    rows: torch.Tensor
    paired: torch.Tensor | None = None


StepLoss = Callable[[Batch], torch.Tensor]


@contextmanager
def training_task(model: nn.Module, progress: Progress, description: str, total: int) -> Iterator[ProgressTask]:
    """A progress task for a training run of several :func:`run_sgd` calls; closed, and the model put in eval
    mode, however the run ends."""
    task = progress.start(description, total)
    try:
        yield task
    finally:
        task.close()
        model.eval()


def run_sgd(
    model: nn.Module,
    step_loss: StepLoss,
    rows: int,
    cfg: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    order: torch.Generator | None = None,
    shuffle: bool = True,
    paired_rows: int | None = None,
    max_steps: int | None = None,
    grad_clip: float = 0.0,
    grad_hook: Callable[[nn.Module, int], None] | None = None,
    info: Callable[[Batch, torch.Tensor], str] | None = None,
    stop_when: Callable[[Batch, torch.Tensor], bool] | None = None,
    train_mode: Callable[[nn.Module], object] = set_train_mode,
    shard: tuple[int, int] = (0, 1),
    task: ProgressTask | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "train",
) -> int:
    """SGD over ``cfg.epochs`` passes of batches of ``range(rows)``, minimising ``step_loss(batch)``; returns the
    number of steps taken. See the module docstring for the order of one step.

    * ``optimizer`` (default: :func:`make_sgd` from ``cfg``) and ``order`` (default: seeded from ``cfg.seed``)
      may be shared between calls, for methods that alternate passes (SCRUB) or phases (ReA);
      ``shuffle=False`` takes the rows in order.
    * ``paired_rows``: each step also gets the next batch of a second set of that size (``batch.paired``),
      cycled and reshuffled every pass by a generator seeded ``cfg.seed + 1`` (NegGrad+, RURK).
    * ``grad_clip`` clips the norm of the optimiser's parameters' gradient; ``grad_hook(model, step)`` runs
      after backward and before clipping.
    * ``train_mode(model)`` starts every epoch (default: :func:`set_train_mode`, which keeps fully frozen
      modules in eval mode).
    * ``shard=(rank, world)``: under ``torch.distributed``, this rank takes rows ``rank, rank + world, ...`` of
      each global batch (and of the paired batch); DistributedDataParallel all-reduces the gradient.
    * ``task``: report to a progress task the caller owns (see :func:`training_task`); otherwise one is started
      from ``progress`` and the model is put in eval mode at the end.
    """
    opt = optimizer if optimizer is not None else make_sgd(model, cfg)
    params = [p for group in opt.param_groups for p in group["params"]]
    gen = order if order is not None else seeded_generator(cfg.seed)
    paired = None if paired_rows is None else cycle_batches(paired_rows, cfg.batch_size, seeded_generator(cfg.seed + 1))
    total = planned_steps(rows, cfg, max_steps)
    rank, world = shard
    step = 0
    with ExitStack() as stack:
        if task is None:
            task = stack.enter_context(training_task(model, progress, description, total))
        for _ in range(cfg.epochs):
            train_mode(model)
            for idx in batches(rows, cfg.batch_size, gen if shuffle else None):
                if max_steps is not None and step >= max_steps:
                    return step
                pidx = None if paired is None else next(paired)[rank::world]
                batch = Batch(step, idx[rank::world], pidx)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step, total)
                loss = step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_hook is not None:
                    grad_hook(model, step)
                if grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                step += 1
                task.advance(1)
                if info is not None:
                    task.update(info=info(batch, loss))
                if stop_when is not None and stop_when(batch, loss):
                    return step
    return step


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    progress: Progress = NULL_PROGRESS,
    description: str = "train",
    step_hook: Callable[[int, float], None] | None = None,
    grad_hook: Callable[[nn.Module, int], None] | None = None,
) -> nn.Module:
    """Cross-entropy SGD on ``(x, y)`` (schedule ``cfg.schedule``); returns ``model``, trained in place, in eval mode.

    Only parameters with ``requires_grad`` are trained; modules whose parameters are all frozen stay in eval
    mode (their BatchNorm statistics do not move). ``grad_hook(model, step)`` runs between backward and step;
    ``step_hook(steps_done, loss)`` after each step.
    """
    device = model_device(model)

    def cross_entropy(batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(x[batch.rows].to(device)), y[batch.rows].to(device))

    def info(batch: Batch, loss: torch.Tensor) -> str:
        if step_hook is not None:
            step_hook(batch.step + 1, loss.item())
        return f"loss {loss.item():.3f}"

    run_sgd(
        model,
        cross_entropy,
        x.shape[0],
        cfg,
        grad_hook=grad_hook,
        info=info,
        progress=progress,
        description=description,
    )
    return model
