"""The endpoint address and the HTTP transport: one host:port, no redirects, timeouts, bounded retries.

The transport is the standard library's :mod:`http.client`, not ``requests`` or ``httpx``:

* it connects to exactly the host and port it is given and never follows a redirect, so "only the given URL is
  contacted" holds by construction (``urllib`` and ``requests`` also read ``HTTP(S)_PROXY`` from the
  environment and would send the bearer token to a proxy);
* one persistent keep-alive connection per worker thread is all the batching needs;
* it adds no dependency to the package (the served-model tests use MLServer, a test extra only).

Retries: 429 and 500/502/503/504 responses and connection errors (refused, reset, dropped mid-response,
timeouts) are retried with exponential backoff, ``backoff · 2^attempt`` capped at ``backoff_max`` (a
``Retry-After`` header raises the wait up to that cap), with "equal jitter" (a factor in [0.5, 1)) from a
seeded generator. Each request may retry ``retries`` times, and the whole model ``retry_budget`` times; then
the request fails with :class:`EndpointUnavailableError`. Every other status fails at once with the server's
message (token scrubbed).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from ...errors import ConfigError, EndpointProtocolError, EndpointUnavailableError, RemoteModelError

log = logging.getLogger(__name__)

MODEL_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
RETRY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, dropped mid-response, unreachable, DNS, timeouts (TLS errors are handled first)
    http.client.IncompleteRead,
    http.client.BadStatusLine,
)
SERVER_TEXT_LIMIT = 200


def is_endpoint(text: str) -> bool:
    """True for ``http://`` and ``https://`` addresses (anything else is a file path)."""
    return text.strip().lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Endpoint:
    """``scheme://host:port/v2/models/NAME[/versions/VERSION]``, parsed and checked."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    model: str
    version: str | None = None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def model_path(self) -> str:
        path = f"/v2/models/{quote(self.model, safe='')}"
        return path + (f"/versions/{quote(self.version, safe='')}" if self.version is not None else "")

    @property
    def infer_path(self) -> str:
        return self.model_path + "/infer"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.model_path}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return self.url


def parse_endpoint(url: str) -> Endpoint:
    """Parse an Open Inference Protocol model URL; :class:`ConfigError` names what is wrong."""
    text = url.strip()
    expected = "expected http(s)://host:port/v2/models/NAME (optionally /versions/VERSION)"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"endpoint {url!r}: {exc}; {expected}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"endpoint {url!r}: scheme {parts.scheme!r} is not http or https; {expected}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"endpoint {parts.scheme}://…@{parts.hostname}: credentials in the URL would be written into reports; "
            "put a bearer token in an environment variable and name it with the token setting (--token-env)"
        )
    if not parts.hostname:
        raise ConfigError(f"endpoint {url!r}: no host; {expected}")
    if parts.query or parts.fragment:
        raise ConfigError(f"endpoint {url!r}: remove the query string/fragment; {expected}")
    match = MODEL_PATH.match(parts.path)
    if match is None:
        raise ConfigError(f"endpoint {url!r}: path {parts.path or '/'!r} is not a model path; {expected}")
    version = match.group("version")
    return Endpoint(
        scheme="https" if scheme == "https" else "http",
        host=parts.hostname,
        port=port if port is not None else (443 if scheme == "https" else 80),
        model=unquote(match.group("name")),
        version=unquote(version) if version is not None else None,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``retries`` per request, ``budget`` over the whole model's life."""

    retries: int = 5
    budget: int = 100
    backoff: float = 0.5
    backoff_max: float = 30.0
    jitter: bool = True


class Cancelled(Exception):
    """Internal: another request of the same call failed, so this one stops retrying."""


class Transport:
    """JSON over HTTP to one endpoint, from any number of threads (one keep-alive connection per thread)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float,
        retry: RetryPolicy,
        token: str | None = None,
        ca_file: str | None = None,
        seed: int = 0,
        charge: Callable[[int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.retry = retry
        self._token = token
        self._charge = charge
        self._jitter = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self.stop = threading.Event()
        self.retries_used = 0
        self.requests = 0
        self._ssl: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"CA file {ca_file}: cannot be read as PEM certificates ({exc})") from exc
        elif ca_file is not None:
            raise ConfigError(f"{endpoint}: a CA file only applies to https:// endpoints")

    def __repr__(self) -> str:  # never shows the token
        return f"Transport({self.endpoint.url!r}, timeout={self.timeout})"

    # -------------------------------------------------------------------------------------------- public

    def get_json(self, path: str) -> Any:
        return self.parse_json(self.request("GET", path), path)

    def post_json(self, path: str, body: bytes, *, rows: int, limit: int) -> Any:
        return self.parse_json(self.request("POST", path, body, rows=rows, limit=limit), path)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def parse_json(self, payload: bytes, path: str) -> Any:
        try:
            return json.loads(payload)
        except RecursionError as exc:
            raise EndpointProtocolError(f"{self.endpoint}: {path} returned JSON nested too deeply to read") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EndpointProtocolError(
                f"{self.endpoint}: {path} returned malformed JSON ({exc}); first bytes: {self.server_text(payload, 60)!r}"
            ) from exc

    def server_text(self, payload: bytes, limit: int = SERVER_TEXT_LIMIT) -> str:
        """Text from the server for an error message: one line, bounded, with the token blanked out."""
        text = payload.decode("utf-8", errors="replace")
        try:
            document = json.loads(text)
            if isinstance(document, dict) and isinstance(document.get("error"), str):
                text = document["error"]
        except (json.JSONDecodeError, RecursionError):
            pass
        text = self.scrub(" ".join(text.split()))
        return text[:limit] + ("…" if len(text) > limit else "")

    def scrub(self, text: str) -> str:
        """``text`` with the bearer token blanked out (servers sometimes echo request headers)."""
        return text.replace(self._token, "***") if self._token else text

    # ------------------------------------------------------------------------------------------- retries

    def request(
        self, method: str, path: str, body: bytes | None = None, *, rows: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """The body of a 200 response; retries as documented in the module docstring."""
        attempt = 0
        while True:
            if self.stop.is_set():
                raise Cancelled
            if rows and self._charge is not None:
                self._charge(rows)
            retry_after: float | None = None
            try:
                status, headers, payload = self._once(method, path, body, limit)
            except RETRY_ERRORS as exc:
                problem = f"connection error: {type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if status == 200:
                    return payload
                if status not in RETRY_STATUS:
                    raise self._refusal(status, headers, payload, method, path)
                problem = f"HTTP {status}: {self.server_text(payload)}".rstrip(": ")
                retry_after = _retry_after(headers.get("retry-after"))
            self._wait_before_retry(attempt, problem, retry_after, method, path)
            attempt += 1

    def _wait_before_retry(self, attempt: int, problem: str, retry_after: float | None, method: str, path: str) -> None:
        with self._lock:
            if attempt >= self.retry.retries:
                reason = f"the per-request limit of {self.retry.retries} retries"
            elif self.retries_used >= self.retry.budget:
                reason = f"the retry budget of {self.retry.budget} retries for this endpoint is spent"
            else:
                reason = ""
                self.retries_used += 1
                factor = self._jitter.uniform(0.5, 1.0) if self.retry.jitter else 1.0
        if reason:
            raise EndpointUnavailableError(
                f"{self.endpoint}: gave up on {method} {path} after {attempt} retries ({reason}); last problem: "
                f"{problem}. Check the server, or raise the timeout/retries"
            )
        delay = min(self.retry.backoff_max, self.retry.backoff * 2.0**attempt) * factor
        if retry_after is not None:
            delay = min(self.retry.backoff_max, max(delay, retry_after))
        log.info("%s: %s %s: %s; retry %d in %.2fs", self.endpoint, method, path, problem, attempt + 1, delay)
        if self.stop.wait(delay):
            raise Cancelled

    def _refusal(
        self, status: int, headers: dict[str, str], payload: bytes, method: str, path: str
    ) -> RemoteModelError:
        where = f"{self.endpoint}: {method} {path}: HTTP {status}"
        if 300 <= status < 400:
            location = " ".join(headers.get("location", "?").split())[:SERVER_TEXT_LIMIT]
            return EndpointUnavailableError(
                f"{where} redirects to {location!r}; redirects are never followed (only the given endpoint is "
                "contacted): give the final URL"
            )
        if status in (401, 403):
            hint = (
                "the bearer token was refused; check the token in the environment variable"
                if self._token
                else "the endpoint wants credentials; put a bearer token in an environment variable and name it "
                "with the token setting (--token-env)"
            )
            return EndpointUnavailableError(f"{where}: {hint}")
        if status == 404:
            return EndpointUnavailableError(
                f"{where}: not found; check the model name and version in the URL ({self.server_text(payload)})"
            )
        return EndpointProtocolError(f"{where}: the server refused the request: {self.server_text(payload)}")

    # ------------------------------------------------------------------------------------------ one try

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._ssl is not None:
                connection = http.client.HTTPSConnection(
                    self.endpoint.host, self.endpoint.port, timeout=self.timeout, context=self._ssl
                )
            else:
                connection = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)

    def _once(self, method: str, path: str, body: bytes | None, limit: int) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", "Host": self.endpoint.netloc}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        connection = self._connection()
        deadline = time.monotonic() + self.timeout
        with self._lock:
            self.requests += 1
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = _read_body(response, deadline, limit, self.endpoint, path)
            status = response.status
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self._drop_connection()
        except ssl.SSLCertVerificationError as exc:
            self._drop_connection()
            raise EndpointUnavailableError(
                f"{self.endpoint}: TLS certificate not trusted ({exc.verify_message}); give the server's CA file"
            ) from exc
        except ssl.SSLError as exc:
            self._drop_connection()
            raise EndpointUnavailableError(f"{self.endpoint}: TLS failed ({exc.reason or exc})") from exc
        except (http.client.IncompleteRead, http.client.BadStatusLine):
            self._drop_connection()
            raise
        except http.client.HTTPException as exc:
            self._drop_connection()
            raise EndpointProtocolError(f"{self.endpoint}: {path}: not a valid HTTP response ({exc!r})") from exc
        except BaseException:
            self._drop_connection()
            raise
        return status, response_headers, payload


def _read_body(response: http.client.HTTPResponse, deadline: float, limit: int, endpoint: Endpoint, path: str) -> bytes:
    """The response body, failing when it grows past ``limit`` bytes or arrives after ``deadline``."""
    length = response.getheader("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise EndpointProtocolError(
            f"{endpoint}: {path} answered with {int(length)} bytes, more than the {limit} a response of this size "
            "can need"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the response took longer than the timeout")
        chunk = response.read(65536)
        if not chunk:
            response.close()  # done with this response; the keep-alive connection stays usable
            body = b"".join(chunks)
            if length is not None and length.isdigit() and len(body) != int(length):
                # read(amt) returns short at EOF instead of raising: a connection dropped mid-body
                raise http.client.IncompleteRead(body, int(length) - len(body))
            return body
        size += len(chunk)
        if size > limit:
            raise EndpointProtocolError(
                f"{endpoint}: {path} answered with more than the {limit} bytes a response of this size can need"
            )
        chunks.append(chunk)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return seconds if seconds >= 0 else None
