"""A served classifier that can only be queried: inputs in, labels (and scores) out, every query accounted for.

:class:`RemoteModel` reads the model's metadata from an Open Inference Protocol endpoint and answers
``predict(x)`` (labels) and ``predict_scores(x)`` (the logits or probabilities the server returns) for inputs in
the data domain, exactly like a local model answers for the rows it is given. It has no gradients, so probes
that need them must be crafted on a model the auditor holds (transfer) or use a query-based attack.

Each call: rows are converted to the wire datatype, hashed, looked up in the answer cache (work directory
or memory), deduplicated, checked against the query budget, sent in batches by a few threads, checked
(:mod:`.protocol`) and stored as each request completes. A seeded small share of already-answered inputs is
re-sent with them; a different answer is recorded in :attr:`RemoteModel.warnings` or raised
(:class:`InconsistentAnswerError`), as the settings say.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ...errors import (
    ConfigError,
    EndpointProtocolError,
    InconsistentAnswerError,
    InputError,
    QueryBudgetError,
)
from ..models import ModelMeta
from .cache import AnswerCache
from .endpoint import Endpoint, RetryPolicy, Transport, parse_endpoint
from .protocol import (
    FLOAT_TYPES,
    INPUT_TYPES,
    INT_TYPES,
    ModelMetadata,
    TensorSpec,
    decode_output,
    encode_request,
    parse_metadata,
    pick_tensor,
)

log = logging.getLogger(__name__)

OutputKind = Literal["auto", "logits", "probabilities", "labels"]
KEY_VERSION = "oip-answer-v1"
RECHECK_STREAM = 0x4F4950  # spawn key of the recheck sampler, independent of the jitter stream
TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an Authorization header can carry
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PROBABILITY_SUM_TOLERANCE = {"FP16": 1e-2, "FP32": 1e-3, "FP64": 1e-3}


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


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join("*" if s == -1 else str(s) for s in shape) + "]"


class RemoteModel:
    """A classifier behind ``http(s)://host:port/v2/models/NAME``; see the module docstring.

    Use it as a context manager (or call :meth:`close`) so connections and threads end with the audit.
    """

    def __init__(
        self,
        url: str,
        settings: RemoteSettings | None = None,
        *,
        work_dir: str | Path | None = None,
        name: str | None = None,
        connect: bool = True,
    ) -> None:
        self.settings = settings or RemoteSettings()
        self.endpoint: Endpoint = parse_endpoint(url)
        self.name = name or self.endpoint.model
        self.warnings: list[RemoteWarning] = []
        self.usage = QueryUsage()
        self._lock = threading.Lock()
        token = read_token(self.settings.token_env)
        if token and self.endpoint.scheme == "http" and not self.endpoint.loopback:
            self._warn("token_over_http", f"{self.endpoint}: the bearer token is sent unencrypted over http://")
        s = self.settings
        self._transport = Transport(
            self.endpoint,
            timeout=s.timeout,
            retry=RetryPolicy(s.retries, s.retry_budget, s.backoff, s.backoff_max, s.jitter),
            token=token,
            ca_file=s.ca_file,
            seed=s.seed,
            charge=self._charge,
        )
        self._cache = AnswerCache(work_dir)
        self._rng = np.random.default_rng(np.random.SeedSequence(s.seed, spawn_key=(RECHECK_STREAM,)))
        self._reservoir: list[tuple[bytes, np.ndarray]] = []
        self._seen = 0
        self._executor: ThreadPoolExecutor | None = None
        self.metadata: ModelMetadata | None = None
        self._input: TensorSpec | None = None
        self._output: TensorSpec | None = None
        self._row_shape: tuple[int, ...] = ()
        self._batch_limit = s.batch_size
        self._num_classes = s.num_classes
        self._kind: OutputKind = s.output
        self._kind_detected = False
        if connect:
            self.connect()

    # --------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._transport.close()
        self._cache.close()

    def __repr__(self) -> str:
        return f"RemoteModel({self.endpoint.url!r}, name={self.name!r})"

    def connect(self) -> RemoteModel:
        """Wait for ``/v2/health/ready``, read the model metadata and settle the input and output tensors."""
        where = str(self.endpoint)
        self._transport.request("GET", "/v2/health/ready")
        metadata = parse_metadata(self._transport.get_json(self.endpoint.model_path), where)
        s = self.settings
        spec = pick_tensor(metadata.inputs, s.input_name, "input", where)
        assert spec is not None  # metadata always lists inputs (parse_metadata checks)
        if spec.datatype not in INPUT_TYPES:
            raise ConfigError(
                f"{where}: input {spec.name!r} has datatype {spec.datatype}; audits send FP32, FP64, FP16 or UINT8"
            )
        if not spec.shape or spec.shape[0] == 0 or (spec.shape[0] == -1 and len(spec.shape) == 1):
            raise ConfigError(
                f"{where}: input {spec.name!r} has shape {_shape_text(spec.shape)}; expected a batch dimension "
                "(-1) followed by the row shape, e.g. [-1, 1, 28, 28]"
            )
        row_shape = tuple(spec.shape[1:])
        if spec.shape[0] > 0:  # a fixed batch dimension: never send more rows than that in one request
            self._batch_limit = min(s.batch_size, spec.shape[0])
        if s.input_shape is not None:
            if len(s.input_shape) != len(row_shape) or any(
                m not in (-1, g) for m, g in zip(row_shape, s.input_shape, strict=True)
            ):
                raise ConfigError(
                    f"{where}: input_shape {list(s.input_shape)} does not fit the endpoint's row shape "
                    f"{_shape_text(row_shape)} (input {spec.name!r})"
                )
            row_shape = tuple(s.input_shape)
        if spec.datatype == "UINT8" and s.mean is not None:
            raise ConfigError(
                f"{where}: input {spec.name!r} is UINT8 (pixels 0..255); mean/std normalisation cannot apply"
            )
        output = pick_tensor(metadata.outputs, s.output_name, "output", where)
        if output is not None:
            declared_classes = self._declared_classes(output, where)
            if declared_classes is not None:
                if s.num_classes is not None and s.num_classes != declared_classes:
                    raise ConfigError(
                        f"{where}: output {output.name!r} has {declared_classes} classes but num_classes={s.num_classes}"
                    )
                self._num_classes = declared_classes
        self.metadata, self._input, self._output, self._row_shape = metadata, spec, output, row_shape
        if spec.datatype == "UINT8":
            self._warn(
                "quantised_input",
                f"{where}: input {spec.name!r} is UINT8, so every input is rounded to a multiple of 1/255 before it "
                "is sent; perturbations smaller than 1/510 per pixel vanish",
            )
        log.info("%s: ready; input %s %s, output kind %s", where, spec.datatype, _shape_text(spec.shape), self._kind)
        return self

    def _declared_classes(self, output: TensorSpec, where: str) -> int | None:
        integer, floating = output.datatype in INT_TYPES, output.datatype in FLOAT_TYPES
        if not (integer or floating):
            raise ConfigError(
                f"{where}: output {output.name!r} has datatype {output.datatype}; expected scores (FP16/FP32/FP64) or "
                "integer class labels"
            )
        if self._kind == "auto" and integer:
            self._kind = "labels"
        if self._kind == "labels" and not integer:
            raise ConfigError(
                f"{where}: output {output.name!r} is {output.datatype}, not integer labels; output=labels does not fit"
            )
        if self._kind in ("logits", "probabilities") and integer:
            raise ConfigError(f"{where}: output {output.name!r} holds integer labels, not {self._kind}")
        if self._kind != "labels" and len(output.shape) == 2 and output.shape[1] > 0:
            return int(output.shape[1])
        return None

    # ------------------------------------------------------------------------------------------ public

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def num_classes(self) -> int | None:
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self._row_shape if self._row_shape and all(s > 0 for s in self._row_shape) else None

    @property
    def output_kind(self) -> OutputKind:
        """``logits``, ``probabilities`` or ``labels``; ``auto`` until the first answer settles it."""
        return self._kind

    @property
    def labels_only(self) -> bool:
        return self._kind == "labels"

    @property
    def remaining_queries(self) -> int | None:
        if self.settings.max_queries is None:
            return None
        with self._lock:
            return max(0, self.settings.max_queries - self.usage.rows_sent)

    @property
    def meta(self) -> ModelMeta:
        """The same record a local model carries, for reports (``path`` is the endpoint URL)."""
        return ModelMeta(
            name=self.name,
            arch="remote",
            num_classes=self._num_classes,
            input_shape=self.input_shape,
            mean=self.settings.mean,
            std=self.settings.std,
            path=self.url,
            extra={
                "endpoint": self.url,
                "metadata_sha256": self.metadata.sha256 if self.metadata else "",
                "platform": self.metadata.platform if self.metadata else "",
                "output_kind": self._kind,
            },
        )

    def usage_dict(self) -> dict[str, int]:
        with self._lock:
            self.usage.requests = self._transport.requests
            self.usage.retries = self._transport.retries_used
            return self.usage.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Everything a report shows about this endpoint (never the token)."""
        metadata = self.metadata
        return {
            "endpoint": self.url,
            "name": self.name,
            "model": self.endpoint.model,
            "version": self.endpoint.version,
            "metadata_sha256": metadata.sha256 if metadata else None,
            "platform": metadata.platform if metadata else None,
            "input": self._input.to_dict() if self._input else None,
            "output": self._output.to_dict() if self._output else {"name": self.settings.output_name},
            "output_kind": self._kind,
            "num_classes": self._num_classes,
            "settings": self.settings.to_dict(),
            "usage": self.usage_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
            "answer_cache": str(self._cache.path) if self._cache.path else None,
        }

    def predict(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Predicted class per row (int64): the argmax of the scores, or the labels the endpoint returns."""
        answers = self._answer(x)
        labels = answers if self.labels_only else answers.argmax(axis=1)
        return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))

    def predict_scores(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The scores the endpoint returns per row (``output_kind`` says whether logits or probabilities)."""
        if self.labels_only:
            raise ConfigError(f"{self.endpoint}: the endpoint returns class labels only; scores are not available")
        answers = self._answer(x)
        return torch.from_numpy(answers.astype(np.float64 if answers.dtype == np.float64 else np.float32))

    def predict_probabilities(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Class probabilities: returned as they are, or the softmax of logits."""
        scores = self.predict_scores(x)
        return scores if self._kind == "probabilities" else torch.softmax(scores, dim=1)

    # --------------------------------------------------------------------------------------- internals

    def _warn(self, code: str, message: str) -> None:
        with self._lock:
            if any(w.code == code and w.message == message for w in self.warnings):
                return
            self.warnings.append(RemoteWarning(code, message))
        log.warning("%s", message)

    def _charge(self, rows: int) -> None:
        """Called by the transport before each attempt: the budget holds for retries too."""
        with self._lock:
            limit = self.settings.max_queries
            if limit is not None and self.usage.rows_sent + rows > limit:
                raise QueryBudgetError(
                    f"{self.endpoint}: sending {rows} more rows would exceed max_queries={limit} "
                    f"({self.usage.rows_sent} already sent); nothing more was sent"
                )
            self.usage.rows_sent += rows

    def _check_budget(self, planned: int) -> None:
        limit = self.settings.max_queries
        with self._lock:
            used = self.usage.rows_sent
        if limit is not None and used + planned > limit:
            raise QueryBudgetError(
                f"{self.endpoint}: this call needs {planned} queries but only {max(0, limit - used)} of "
                f"max_queries={limit} are left ({used} sent); nothing was sent. Raise --max-queries, or lower "
                "--draws, the number of τ values or the forget set"
            )

    def _require_connected(self) -> tuple[TensorSpec, tuple[int, ...]]:
        if self._input is None:
            self.connect()
        assert self._input is not None
        return self._input, self._row_shape

    def _to_wire(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Rows in the input's wire datatype (little-endian, C order): exactly the bytes that are hashed."""
        spec, row_shape = self._require_connected()
        where = str(self.endpoint)
        tensor = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise InputError(f"{where}: inputs must be a floating-point tensor in the data domain")
        tensor = tensor.detach().to("cpu")
        got = tuple(tensor.shape[1:])
        if (
            tensor.dim() < 1
            or len(got) != len(row_shape)
            or any(r not in (-1, g) for r, g in zip(row_shape, got, strict=True))
        ):
            raise InputError(
                f"{where}: input {spec.name!r} takes rows of shape {_shape_text(row_shape)}, got {list(got)}; check "
                "the sample set (or input_shape)"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{where}: inputs contain NaN or infinite values")
        s = self.settings
        if s.mean is not None and s.std is not None:
            mean = torch.tensor(s.mean, dtype=torch.float32)
            std = torch.tensor(s.std, dtype=torch.float32)
            view = [1, -1] + [1] * (tensor.dim() - 2) if mean.numel() > 1 else [1] * tensor.dim()
            tensor = (tensor.float() - mean.view(view)) / std.view(view)
        if spec.datatype == "UINT8":
            array = (tensor.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
        elif spec.datatype == "FP16":
            array = tensor.half().numpy()
        elif spec.datatype == "FP64":
            array = tensor.double().numpy()
        else:
            array = tensor.float().numpy()
        wire_dtype = FLOAT_TYPES.get(spec.datatype, np.dtype("u1"))
        return np.ascontiguousarray(array, dtype=wire_dtype)

    def _key_prefix(self, row_shape: tuple[int, ...]) -> hashlib._Hash:
        assert self._input is not None and self.metadata is not None
        header = [
            KEY_VERSION,
            self.url,
            self.metadata.sha256,
            self._input.name,
            self._input.datatype,
            list(row_shape),
            self._output.name if self._output is not None else self.settings.output_name,
        ]
        return hashlib.sha256(json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\0")

    @property
    def _spec(self) -> str:
        if self._kind == "labels":
            return "labels:<i8"
        datatype = self._output.datatype if self._output is not None else "FP32"
        return f"scores:{FLOAT_TYPES.get(datatype, np.dtype('<f4')).str}"

    def _decode_value(self, value: bytes) -> np.ndarray | None:
        if self._kind == "labels":
            return np.frombuffer(value, dtype="<i8").reshape(())
        dtype = np.dtype(self._spec.split(":", 1)[1])
        row = np.frombuffer(value, dtype=dtype)
        if row.size < 2 or (self._num_classes is not None and row.size != self._num_classes):
            return None  # another layout: read as missing
        return row

    def _answer(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        wire = self._to_wire(x)
        n = wire.shape[0]
        prefix = self._key_prefix(tuple(wire.shape[1:]))
        keys = []
        for i in range(n):
            digest = prefix.copy()
            digest.update(wire[i].tobytes())
            keys.append(digest.digest())
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        unique = list(first)
        answers: dict[bytes, np.ndarray] = {}
        for key, value in self._cache.get_many(unique, self._spec).items():
            row = self._decode_value(value)
            if row is not None:
                answers[key] = row
        if answers and self._num_classes is None and not self.labels_only:
            self._num_classes = int(next(iter(answers.values())).size)
        hits = len(answers)
        missing = [k for k in unique if k not in answers]
        rechecks = self._pick_rechecks(len(missing)) if missing else []
        self._check_budget(len(missing))
        remaining = self.remaining_queries
        if rechecks and remaining is not None and remaining < len(missing) + len(rechecks):
            rechecks = []  # the consistency check is optional; the budget is not
            self._warn(
                "rechecks_skipped", f"{self.endpoint}: consistency re-checks were skipped to stay within max_queries"
            )
        with self._lock:
            self.usage.rows_requested += n
            self.usage.unique_rows += len(unique)
            self.usage.cache_hits += hits
        if missing or rechecks:
            rows = [wire[first[k]] for k in missing] + [row for _, row in rechecks]
            send_keys = missing + [k for k, _ in rechecks]
            fresh = self._send(np.stack(rows), send_keys, len(missing))
            answers.update((k, fresh[k]) for k in missing)
            if rechecks:
                self._compare(rechecks, {k: fresh[("recheck", k)] for k, _ in rechecks})
        self._remember(unique, wire, first)
        out = np.stack([answers[k] for k in keys]) if n else self._empty()
        self._check_kind(out)
        return out

    def _empty(self) -> np.ndarray:
        if self.labels_only:
            return np.zeros(0, dtype=np.int64)
        return np.zeros((0, self._num_classes or 0), dtype=np.dtype(self._spec.split(":", 1)[1]))

    def _send(self, rows: np.ndarray, keys: list[Any], fresh_count: int) -> dict[Any, np.ndarray]:
        """Answers for ``rows``; the first ``fresh_count`` are stored in the cache as their request completes,
        the rest (rechecks) are returned under ``("recheck", key)``."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="oip")
        size = self._batch_limit
        spans = [(start, min(start + size, len(rows))) for start in range(0, len(rows), size)]
        results: dict[Any, np.ndarray] = {}
        pending: dict[Future[np.ndarray], tuple[int, int]] = {}
        queue = iter(spans)

        def submit_next() -> None:
            span = next(queue, None)
            if span is not None and self._executor is not None:
                pending[self._executor.submit(self._request, rows[span[0] : span[1]])] = span

        def settle(span: tuple[int, int], answer: np.ndarray) -> None:
            start, stop = span
            if not self.labels_only:
                if self._num_classes is None:
                    self._num_classes = int(answer.shape[1])
                elif answer.shape[1] != self._num_classes:
                    raise EndpointProtocolError(
                        f"{self.endpoint}: answers have {answer.shape[1]} classes, earlier ones {self._num_classes}"
                    )
            if not self.labels_only:  # stored and returned in the declared dtype (FP32 if none is declared)
                answer = answer.astype(np.dtype(self._spec.split(":", 1)[1]), copy=False)
            stored = []
            for offset, index in enumerate(range(start, stop)):
                key = keys[index]
                if index < fresh_count:
                    results[key] = answer[offset]
                    stored.append((key, np.ascontiguousarray(answer[offset]).tobytes()))
                else:
                    results[("recheck", key)] = answer[offset]
            self._cache.put_many(stored, self._spec)
            with self._lock:
                self.usage.rows_answered += len(stored)

        for _ in range(2 * self.settings.concurrency):
            submit_next()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    span = pending.pop(future)
                    settle(span, future.result())
                    submit_next()
        except BaseException:
            # Stop the other requests (they quit at their next retry wait), keep what was already answered.
            self._transport.stop.set()
            for future in pending:
                future.cancel()
            wait(pending)
            for future, span in pending.items():
                if not future.cancelled() and future.exception() is None:
                    try:
                        settle(span, future.result())
                    except Exception:  # noqa: BLE001 - the first error is the one to report
                        log.debug("%s: could not keep a late answer", self.endpoint, exc_info=True)
            raise
        finally:
            self._transport.stop.clear()
        return results

    def _request(self, rows: np.ndarray) -> np.ndarray:
        """One ``/infer`` request (worker thread): the checked answer rows."""
        assert self._input is not None
        several = self.metadata is not None and len(self.metadata.outputs) > 1
        requested = self._output.name if several and self._output is not None else self.settings.output_name
        body = encode_request(self._input, rows, requested)
        per_row = 48 * (1 if self.labels_only else (self._num_classes or 1000))  # JSON numbers are < 30 bytes
        document = self._transport.post_json(
            self.endpoint.infer_path, body, rows=rows.shape[0], limit=(1 << 20) + rows.shape[0] * per_row
        )
        try:
            return decode_output(
                document,
                output=self._output,
                output_name=self.settings.output_name,
                rows=rows.shape[0],
                num_classes=self._num_classes,
                labels=self.labels_only,
                where=str(self.endpoint),
            )
        except EndpointProtocolError as exc:  # the message may quote the server: never pass the token on
            raise EndpointProtocolError(self._transport.scrub(str(exc))) from None

    # ----------------------------------------------------------------------------- consistency checks

    def _pick_rechecks(self, missing: int) -> list[tuple[bytes, np.ndarray]]:
        rate = self.settings.recheck_rate
        if rate <= 0 or not self._reservoir:
            return []
        count = min(len(self._reservoir), math.ceil(rate * missing))
        chosen = self._rng.choice(len(self._reservoir), size=count, replace=False)
        return [self._reservoir[int(i)] for i in sorted(chosen.tolist())]

    def _remember(self, unique: list[bytes], wire: np.ndarray, first: dict[bytes, int]) -> None:
        """Reservoir sample (algorithm R, seeded) of answered inputs, the pool rechecks draw from."""
        if self.settings.recheck_rate <= 0 or not unique:
            return
        pool = self.settings.recheck_pool
        seen = self._seen + np.arange(1, len(unique) + 1)
        slots = self._rng.integers(0, seen)
        for key, slot in zip(unique, slots.tolist(), strict=True):
            if len(self._reservoir) < pool:
                self._reservoir.append((key, wire[first[key]].copy()))
            elif slot < pool:
                self._reservoir[slot] = (key, wire[first[key]].copy())
        self._seen += len(unique)

    def _compare(self, rechecks: list[tuple[bytes, np.ndarray]], again: dict[bytes, np.ndarray]) -> None:
        before: dict[bytes, np.ndarray] = {}
        for key, value in self._cache.get_many([k for k, _ in rechecks], self._spec).items():
            row = self._decode_value(value)
            if row is not None:
                before[key] = row
        differing, labels_changed, largest = 0, 0, 0.0
        for key, _ in rechecks:
            old, new = before.get(key), again[key]
            if old is None:
                continue
            if self.labels_only:
                changed = bool(old != new)
                labels_changed += changed
            else:
                old64, new64 = old.astype(np.float64), new.astype(np.float64)
                gap = float(np.abs(old64 - new64).max())
                largest = max(largest, gap)
                changed = gap > self.settings.score_atol + self.settings.score_rtol * float(np.abs(old64).max())
                labels_changed += bool(changed and old.argmax() != new.argmax())
            differing += changed
        with self._lock:
            self.usage.rechecks += len(rechecks)
            self.usage.inconsistent += differing
        if not differing:
            return
        detail = f"labels changed on {labels_changed}" + ("" if self.labels_only else f", max |Δscore| {largest:.3g}")
        message = (
            f"{self.endpoint}: {differing} of {len(rechecks)} re-sent inputs got a different answer than before "
            f"({detail}); the model behind the endpoint changed or answers non-deterministically, so the counts "
            "may mix two models"
        )
        if self.settings.on_inconsistent == "error":
            raise InconsistentAnswerError(message)
        self._warn("inconsistent_answers", message)

    def _check_kind(self, scores: np.ndarray) -> None:
        """Settle ``auto`` as logits or probabilities on the first answers, and hold probabilities to it."""
        if self.labels_only or scores.size == 0:
            return
        datatype = self._output.datatype if self._output is not None else "FP32"
        tolerance = PROBABILITY_SUM_TOLERANCE.get(datatype, 1e-3)
        values = scores.astype(np.float64)
        looks_like = bool(
            (values >= -tolerance).all()
            and (values <= 1 + tolerance).all()
            and (np.abs(values.sum(axis=1) - 1.0) <= tolerance).all()
        )
        if self._kind == "auto":
            self._kind = "probabilities" if looks_like else "logits"
            self._kind_detected = True
            log.info("%s: answers read as %s", self.endpoint, self._kind)
        elif self._kind == "probabilities" and not looks_like:
            worst = float(np.abs(values.sum(axis=1) - 1.0).max())
            how = "looked like probabilities at first" if self._kind_detected else "was declared output=probabilities"
            raise EndpointProtocolError(
                f"{self.endpoint}: the output {how}, but rows now sum to 1 ± {worst:.3g} or leave [0, 1]; "
                "declare output=logits if the server returns logits"
            )
