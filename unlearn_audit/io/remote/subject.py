"""A served model as an :class:`~unlearn_audit.io.models.AuditableModel`, so the engine counts it like a local one.

:class:`RemoteNet` is a module without parameters whose ``forward`` sends the rows to the endpoint and returns
what it answered as float32 scores: the logits, or the log of the probabilities (the same argmax, which is all
the counts use, and the softmax gives the probabilities back; two classes within one float32 step of each other
in log space could tie), or, for a label-only endpoint, one-hot scores of the labels. It has no gradients: :func:`is_query_only` tells the audit to
run adversarial probes as transfer probes and to keep the numeric precision at fp32 (the server computes in its
own precision; a bf16 check would only cost queries).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from ..models import AuditableModel
from .model import RemoteModel


class RemoteNet(nn.Module):
    """``forward(x)``: the endpoint's scores for the rows of ``x`` (no gradients)."""

    query_only = True

    def __init__(self, remote: RemoteModel) -> None:
        super().__init__()
        self.remote = remote

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                f"{self.remote.endpoint}: a served model has no gradients; adversarial probes run as transfer probes"
            )
        if self.remote.labels_only:
            if self.remote.num_classes is None:
                raise ConfigError(f"{self.remote.endpoint}: the endpoint returns labels only; pass --num-classes")
            labels = self.remote.predict(x)
            return nn.functional.one_hot(labels, self.remote.num_classes).float().to(x.device)
        scores = self.remote.predict_scores(x)
        if self.remote.output_kind == "probabilities":  # log p: the same argmax, and softmax(log p) = p
            scores = scores.double().clamp_min(1e-300).log()
        return scores.float().to(x.device)

    def __deepcopy__(self, memo: dict[int, Any]) -> RemoteNet:
        return self  # one client per endpoint: the engine's private copy shares the connections and the cache

    def extra_repr(self) -> str:
        return repr(self.remote.url)


def remote_auditable(remote: RemoteModel) -> AuditableModel:
    """``remote`` as a model the audit takes (normalisation, if any, happens in the client before sending)."""
    meta = remote.meta
    identity = f"{remote.url}\0{meta.extra.get('metadata_sha256', '')}".encode()
    # the record's sha256 names the endpoint and its metadata (checkpoint caches key on it), not weights
    record = dataclasses.replace(
        meta,
        mean=None,
        std=None,
        sha256=hashlib.sha256(identity).hexdigest(),
        input_shape_source="the endpoint's metadata",
    )
    return AuditableModel(RemoteNet(remote), record)


def is_query_only(model: nn.Module) -> bool:
    """True for a model the audit can only query (no gradients): a served model."""
    net = getattr(model, "net", model)
    return bool(getattr(net, "query_only", False))


def remote_of(model: nn.Module) -> RemoteModel | None:
    """The client behind a served model, or None for a local one."""
    net = getattr(model, "net", model)
    return net.remote if isinstance(net, RemoteNet) else None


def refuse_fine_tuning(subjects: Sequence[nn.Module], fine_tuned: bool) -> None:
    """A served subject cannot be fine-tuned (re-learn time, the Reminiscence probe): a one-line error."""
    if fine_tuned and any(is_query_only(m) for m in subjects):
        raise ConfigError(
            "a served model cannot be fine-tuned: re-learn time (--original) and the Reminiscence probe "
            "(--panel all) need its weights; drop them (--panel standard without --original)"
        )


def remote_record(
    subjects: Sequence[nn.Module],
    references: Sequence[nn.Module],
    counts: Mapping[str, Any],
    surrogate: nn.Module | None,
) -> dict[str, Any] | None:
    """The report's ``remote`` section: each served model's endpoint, settings (never the token), queries used
    and warnings, each probe's access mode and the surrogate; None when every model is local."""
    endpoints = []
    for role, models in (("model", subjects), ("reference", references)):
        for model in models:
            remote = remote_of(model)
            if remote is not None:
                endpoints.append({"role": role, **remote.to_dict()})
    if not endpoints:
        return None
    limits = {e["settings"]["max_queries"] for e in endpoints}
    meta = getattr(surrogate, "meta", None)
    return {
        "endpoints": endpoints,
        "queries_used": sum(int(e["usage"]["rows_sent"]) for e in endpoints),
        "max_queries": limits.pop() if len(limits) == 1 else None,
        "surrogate": meta.name if meta is not None else None,
        "access": {name: c.access for name, c in counts.items()},
    }
