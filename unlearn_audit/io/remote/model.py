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

The parts live beside it: :mod:`.settings` (settings, usage, warnings, the token), :mod:`.signature` (the
tensors settled from the metadata), :mod:`.wire` (rows to hashed bytes), :mod:`.cache` (the answer store),
:mod:`.dispatch` (concurrent batches), :mod:`.endpoint` (HTTP and retries), :mod:`.consistency` (re-checks).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, EndpointProtocolError, InconsistentAnswerError, QueryBudgetError
from ..models import ModelMeta
from .cache import AnswerCache
from .consistency import RecheckPool, compare_answers
from .dispatch import Span, dispatch
from .endpoint import Endpoint, RetryPolicy, Transport, parse_endpoint
from .protocol import FLOAT_TYPES, ModelMetadata, TensorSpec, decode_output, encode_request, parse_metadata
from .settings import OutputKind, QueryUsage, RemoteSettings, RemoteWarning, read_token
from .signature import settle_signature
from .wire import answer_key_prefix, looks_like_probabilities, shape_text, to_wire

log = logging.getLogger(__name__)


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
        self._rechecks = RecheckPool(s.seed, s.recheck_rate, s.recheck_pool)
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
        signature = settle_signature(metadata, self.settings, where)
        spec, self._output, self._row_shape = signature.input, signature.output, signature.row_shape
        self._batch_limit, self._num_classes, self._kind = signature.batch_limit, signature.num_classes, signature.kind
        self.metadata, self._input = metadata, spec
        if spec.datatype == "UINT8":
            self._warn(
                "quantised_input",
                f"{where}: input {spec.name!r} is UINT8, so every input is rounded to a multiple of 1/255 before it "
                "is sent; perturbations smaller than 1/510 per pixel vanish",
            )
        log.info("%s: ready; input %s %s, output kind %s", where, spec.datatype, shape_text(spec.shape), self._kind)
        return self

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
        spec, row_shape = self._require_connected()
        s = self.settings
        return to_wire(x, spec, row_shape, mean=s.mean, std=s.std, where=str(self.endpoint))

    def _key_prefix(self, row_shape: tuple[int, ...]) -> Any:
        assert self._input is not None and self.metadata is not None
        output_name = self._output.name if self._output is not None else self.settings.output_name
        return answer_key_prefix(self.url, self.metadata.sha256, self._input, row_shape, output_name)

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
        rechecks = self._rechecks.pick(len(missing)) if missing else []
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
        self._rechecks.remember(unique, wire, first)
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
        results: dict[Any, np.ndarray] = {}

        def settle(span: Span, answer: np.ndarray) -> None:
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

        dispatch(
            self._executor,
            rows,
            batch_size=self._batch_limit,
            in_flight=2 * self.settings.concurrency,
            request=self._request,
            settle=settle,
            stop=self._transport.stop,
            where=str(self.endpoint),
        )
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

    def _compare(self, rechecks: list[tuple[bytes, np.ndarray]], again: dict[bytes, np.ndarray]) -> None:
        before: dict[bytes, np.ndarray] = {}
        for key, value in self._cache.get_many([k for k, _ in rechecks], self._spec).items():
            row = self._decode_value(value)
            if row is not None:
                before[key] = row
        s = self.settings
        keys = [k for k, _ in rechecks]
        found = compare_answers(keys, before, again, labels_only=self.labels_only, rtol=s.score_rtol, atol=s.score_atol)
        differing, labels_changed, largest = found.differing, found.labels_changed, found.largest_gap
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
        looks_like, worst = looks_like_probabilities(scores, datatype)
        if self._kind == "auto":
            self._kind = "probabilities" if looks_like else "logits"
            self._kind_detected = True
            log.info("%s: answers read as %s", self.endpoint, self._kind)
        elif self._kind == "probabilities" and not looks_like:
            how = "looked like probabilities at first" if self._kind_detected else "was declared output=probabilities"
            raise EndpointProtocolError(
                f"{self.endpoint}: the output {how}, but rows now sum to 1 ± {worst:.3g} or leave [0, 1]; "
                "declare output=logits if the server returns logits"
            )
