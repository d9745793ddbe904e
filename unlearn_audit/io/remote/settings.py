"""What a remote audit may be told and what it reports: the query settings, the usage counters, the warnings.

Everything in :class:`RemoteSettings` may be written to a report. The bearer token is not a setting: it is read
from the environment variable that ``token_env`` names (:func:`read_token`) and never stored.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ...errors import ConfigError

OutputKind = Literal["auto", "logits", "probabilities", "labels"]
TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an Authorization header can carry
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RemoteSettings:
    """How to query an endpoint. Everything here may be written to a report: the token is read from the
    environment variable named by ``token_env`` and never stored."""

    batch_size: int = 64
    concurrency: int = 4
    timeout: float = 30.0
    retries: int = 5
    retry_budget: int = 100
    backoff: float = 0.5
    backoff_max: float = 30.0
    jitter: bool = True
    seed: int = 0
    token_env: str | None = None
    max_queries: int | None = None
    output: OutputKind = "auto"
    input_name: str | None = None
    output_name: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    recheck_rate: float = 0.01
    recheck_pool: int = 256
    on_inconsistent: Literal["warn", "error"] = "warn"
    score_rtol: float = 1e-4
    score_atol: float = 1e-5
    ca_file: str | None = None

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "concurrency": self.concurrency, "recheck_pool": self.recheck_pool}
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"remote {key} {value!r}: must be a positive integer")
        for key, value in {"retries": self.retries, "retry_budget": self.retry_budget}.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"remote {key} {value!r}: must be an integer >= 0")
        for key, number in {"timeout": self.timeout, "backoff_max": self.backoff_max}.items():
            if not math.isfinite(number) or number <= 0:
                raise ConfigError(f"remote {key} {number!r}: must be a positive number of seconds")
        if not math.isfinite(self.backoff) or self.backoff < 0:
            raise ConfigError(f"remote backoff {self.backoff!r}: must be >= 0 seconds")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError(f"max_queries {self.max_queries}: must be a positive number of rows")
        if self.output not in ("auto", "logits", "probabilities", "labels"):
            raise ConfigError(f"remote output {self.output!r}: use auto, logits, probabilities or labels")
        if self.on_inconsistent not in ("warn", "error"):
            raise ConfigError(f"remote on_inconsistent {self.on_inconsistent!r}: use warn or error")
        if not 0.0 <= self.recheck_rate <= 1.0:
            raise ConfigError(f"remote recheck_rate {self.recheck_rate!r}: must be between 0 and 1")
        if self.score_rtol < 0 or self.score_atol < 0:
            raise ConfigError("remote score_rtol/score_atol: must be >= 0")
        if self.token_env is not None and not ENV_NAME.match(self.token_env):
            raise ConfigError(
                f"token_env {self.token_env!r}: give the NAME of an environment variable (letters, digits, _), "
                "not the token itself"
            )
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"num_classes {self.num_classes}: a classifier needs at least 2 classes")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("remote mean/std: give both, or neither")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
                raise ConfigError("remote mean/std: need the same number of values, and std values > 0")
        if self.input_shape is not None and (not self.input_shape or any(s < 1 for s in self.input_shape)):
            raise ConfigError(f"remote input_shape {self.input_shape}: every dimension must be a positive integer")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("input_shape", "mean", "std"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


@dataclass(frozen=True)
class RemoteWarning:
    """Something a report must show: the audit ran, but a reader should know this."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class QueryUsage:
    """What the audit cost at the endpoint. ``rows_sent`` is what the budget limits and the server saw:
    every row of every attempt, retries and consistency re-checks included."""

    rows_requested: int = 0  # rows the caller asked about, duplicates included
    unique_rows: int = 0  # distinct inputs among them (per call, summed)
    cache_hits: int = 0  # distinct inputs answered from the answer cache (memory or work directory)
    rows_sent: int = 0
    rows_answered: int = 0  # fresh answers received and stored
    rechecks: int = 0  # earlier inputs re-sent for the consistency check
    inconsistent: int = 0  # of those, answers that differed
    requests: int = 0  # HTTP requests, health and metadata included
    retries: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def read_token(env_name: str | None) -> str | None:
    """The bearer token from the environment variable ``env_name`` (never from argv or files)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set or empty; it should hold the bearer token")
    if not TOKEN_CHARS.match(value):
        raise ConfigError(
            f"environment variable {env_name} holds characters a bearer token cannot contain (spaces or non-ASCII)"
        )
    return value
