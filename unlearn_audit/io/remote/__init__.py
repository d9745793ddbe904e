"""A served model over the Open Inference Protocol (KServe v2 REST) that the audit can only query.

``RemoteModel("http://host:port/v2/models/NAME", RemoteSettings(...), work_dir=...)`` answers ``predict(x)``
and ``predict_scores(x)`` like a local model, from an endpoint that KServe, Triton, Seldon MLServer or
TorchServe serve. See docs/remote.md.
"""

from __future__ import annotations

from .cache import AnswerCache
from .endpoint import Endpoint, RetryPolicy, is_endpoint, parse_endpoint
from .model import RemoteModel
from .protocol import ModelMetadata, TensorSpec
from .settings import QueryUsage, RemoteSettings, RemoteWarning, read_token

__all__ = [
    "AnswerCache",
    "Endpoint",
    "ModelMetadata",
    "QueryUsage",
    "RemoteModel",
    "RemoteSettings",
    "RemoteWarning",
    "RetryPolicy",
    "TensorSpec",
    "is_endpoint",
    "parse_endpoint",
    "read_token",
]
