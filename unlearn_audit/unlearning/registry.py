"""One signature for every unlearning method: ``unlearn(method, model, forget, retain, **hparams) -> model``.

A method takes the model to unlearn (never modified in place), the forget and retain sets, and keyword
hyper-parameters whose defaults follow the paper (SPEC §8). Built-in methods write those once, as the fields of a
frozen dataclass, and :func:`hyperparameters` turns them into the method's keyword signature. It returns a new :class:`AuditableModel` whose
metadata records the method, the hyper-parameters actually used, the parent's sha256 and the seed.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch

from ..device import resolve_device
from ..errors import ConfigError
from ..io.models import AuditableModel, wrap_model
from ..io.samples import Samples
from ..progress import NULL_PROGRESS, Progress


class UnlearningMethod(Protocol):
    def __call__(
        self, model: AuditableModel, forget: Samples, retain: Samples, *, seed: int, progress: Progress, **hparams: Any
    ) -> AuditableModel: ...


_METHODS: dict[str, Callable[..., AuditableModel]] = {}


def register_method(name: str, fn: Callable[..., AuditableModel], *, force: bool = False) -> None:
    if name in _METHODS and not force:
        raise ConfigError(f"unlearning method {name!r} is already registered; pass force=True to replace it")
    _METHODS[name] = fn


def hyperparameters(
    settings: type[Any], *, build: Callable[..., Any] | None = None, unset: Iterable[str] = ()
) -> Callable[[Callable[..., AuditableModel]], Callable[..., AuditableModel]]:
    """Decorator: ``run(model, forget, retain, settings, *, seed, progress)`` becomes a registry method
    ``method(model, forget, retain, *, seed, progress, **hparams)``.

    The method's keyword hyper-parameters and their defaults are the fields of the frozen dataclass ``settings``,
    the one place they are written: the method's signature (which :func:`method_defaults`, the CLI's ``--param``
    and ``help()`` read) is generated from them. ``build(**hparams)`` makes the settings object (default: the
    dataclass); fields named in ``unset`` show the default None, meaning "resolved by ``build``" (RURK's λ values
    come from its preset).
    """
    blank = set(unset)
    make = build if build is not None else settings
    keyword = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [
            *(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("model", "forget", "retain")),
            inspect.Parameter("seed", keyword, annotation=int),
            inspect.Parameter("progress", keyword, annotation=Progress),
            *(
                inspect.Parameter(f.name, keyword, default=None if f.name in blank else f.default, annotation=f.type)
                for f in dataclasses.fields(settings)
            ),
        ],
        return_annotation=AuditableModel,
    )

    def decorate(run: Callable[..., AuditableModel]) -> Callable[..., AuditableModel]:
        def method(
            model: AuditableModel, forget: Samples, retain: Samples, *, seed: int, progress: Progress, **hparams: Any
        ) -> AuditableModel:
            return run(model, forget, retain, make(**hparams), seed=seed, progress=progress)

        method.__name__, method.__qualname__, method.__doc__ = run.__name__, run.__qualname__, run.__doc__
        method.__module__ = run.__module__
        setattr(method, "__signature__", signature)  # noqa: B010
        setattr(method, "settings", settings)  # noqa: B010
        setattr(method, "run", run)  # noqa: B010
        return method

    return decorate


def registered_methods() -> list[str]:
    return sorted(_METHODS)


def method_defaults(method: str) -> dict[str, Any]:
    fn = _get(method)
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name not in ("seed", "progress") and p.default is not p.empty
    }


ALIASES = {
    "neggrad-plus": "neggrad+",
    "neggradplus": "neggrad+",
    "euk": "eu-k",
    "cfk": "cf-k",
    "fisher-forgetting": "fisher",
}


def canonical(method: str) -> str:
    key = method.strip().lower().replace("_", "-")
    return ALIASES.get(key, key)


def _get(method: str) -> Callable[..., AuditableModel]:
    key = canonical(method)
    if key not in _METHODS:
        raise ConfigError(f"unknown unlearning method {method!r}; choose from {', '.join(registered_methods())}")
    return _METHODS[key]


def unlearn(
    method: str,
    model: AuditableModel | torch.nn.Module,
    forget: Samples,
    retain: Samples,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Progress = NULL_PROGRESS,
    **hparams: Any,
) -> AuditableModel:
    """Run ``method`` on a copy of ``model``. Unknown hyper-parameters are an error, not silently ignored."""
    fn = _get(method)
    defaults = method_defaults(method)
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise ConfigError(
            f"method {method}: unknown hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults)) or 'none'}"
        )
    source = wrap_model(model)
    work = copy.deepcopy(source)
    if device is not None:
        work = work.to(resolve_device(device))
    torch.manual_seed(seed)
    result = fn(work, forget, retain, seed=seed, progress=progress, **hparams)
    used = {**defaults, **hparams}
    extra = dict(source.meta.extra)
    extra.update(
        {
            "method": canonical(method),
            "hparams": _json(used),
            "seed": str(seed),
        }
    )
    if source.meta.sha256:
        extra["parent_sha256"] = source.meta.sha256
    result.meta = dataclasses.replace(source.meta, extra=extra, path=None, sha256=None)
    return result.eval()


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
