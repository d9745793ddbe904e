"""A small Open Inference Protocol server (stdlib ``http.server`` in a thread) with fault injection.

It answers ``/v2/health/ready``, ``/v2/models/NAME`` and ``/v2/models/NAME/infer`` from a backend (a numpy
function of the input rows, or the real MLServer it forwards to), and counts every input row it receives and
answers by the sha256 of the row's bytes, so tests can prove what a client sent. Faults are plain attributes
a test sets: statuses to return, connections to drop, delays, corrupted answers, answers that change, and a
hold that parks requests until the test releases them. Every wait has a timeout.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DTYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "UINT8": "u1"}
WAIT_LIMIT = 60.0  # no request is parked longer than this, whatever a test forgets


def row_hashes(rows: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest() for r in rows]


def linear_model(
    input_shape: tuple[int, ...], num_classes: int = 10, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """A fixed random linear classifier on float64 (exact enough that argmax ties never happen)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(int(np.prod(input_shape)), num_classes))
    bias = rng.normal(size=num_classes)

    def scores(rows: np.ndarray) -> np.ndarray:
        return (rows.reshape(rows.shape[0], -1).astype(np.float64) - 0.5) @ weight + 0.1 * bias

    return scores


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients that time out or give up leave broken pipes behind; that is the point of the tests


class FakeOIPServer:
    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray] | None = None,
        *,
        name: str = "fake",
        input_shape: tuple[int, ...] = (8,),
        num_classes: int = 10,
        datatype: str = "FP32",
        output_datatype: str = "FP32",
        output_name: str = "logits",
        token: str | None = None,
        upstream: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.tls = tls
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.datatype = datatype
        self.output_datatype = output_datatype
        self.output_name = output_name
        self.model = model or linear_model(input_shape, num_classes)
        self.token = token
        self.upstream = upstream  # "host:port" of a real server to forward infer/metadata requests to
        self.metadata_extra: dict[str, Any] = {}
        # faults
        self.fail_next: list[int] = []  # statuses for the next infer requests, in order
        self.always_fail: int | None = None
        self.retry_after: str | None = None
        self.drop_next = 0  # read the request, then close the connection without answering
        self.truncate_next = 0  # send half of the answer, then close
        self.delay = 0.0  # seconds before each infer answer
        self.corrupt: Callable[[dict[str, Any]], bytes] | None = None
        self.changed_model: Callable[[np.ndarray], np.ndarray] | None = None
        self.change_after_rows: int | None = None  # answers come from changed_model after this many answered rows
        self.hold_after_rows: int | None = None  # park requests once this many rows were answered
        self.redirect: str | None = None
        # bookkeeping
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.answered_rows = 0
        self.infer_requests = 0
        self.held = 0
        self.release = threading.Event()
        self.authorization_seen: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeOIPServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeOIPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v2/models/{self.name}"

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            time.sleep(0.01)

    # ------------------------------------------------------------------------------------------ content

    def metadata(self) -> dict[str, Any]:
        if self.upstream is not None:
            return json.loads(self._forward("GET", f"/v2/models/{self.name}", None)[1])
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "fake",
            "inputs": [{"name": "input", "datatype": self.datatype, "shape": [-1, *self.input_shape]}],
            "outputs": [{"name": self.output_name, "datatype": self.output_datatype, "shape": [-1, self.num_classes]}],
            **self.metadata_extra,
        }

    def _forward(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        assert self.upstream is not None
        host, port = self.upstream.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def answer(self, body: bytes, rows: np.ndarray) -> bytes:
        """The response body for ``rows`` (before corruption), from the backend or the upstream server."""
        with self.lock:
            changed = self.change_after_rows is not None and self.answered_rows >= self.change_after_rows
        if self.upstream is not None and not changed:
            status, payload = self._forward("POST", f"/v2/models/{self.name}/infer", body)
            assert status == 200, payload
            document = json.loads(payload)
        else:
            model = self.changed_model if changed and self.changed_model is not None else self.model
            scores = np.asarray(model(rows))
            datatype = self.output_datatype
            data = scores.astype(np.int64 if datatype.startswith(("INT", "UINT")) else DTYPES.get(datatype, "<f4"))
            document = {
                "model_name": self.name,
                "outputs": [
                    {
                        "name": self.output_name,
                        "datatype": datatype,
                        "shape": list(data.shape),
                        "data": data.reshape(-1).tolist(),
                    }
                ],
            }
        if self.corrupt is not None:
            return self.corrupt(document)
        return json.dumps(document).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOIPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _authorised(self) -> bool:
        fake = self.fake
        seen = self.headers.get("Authorization", "")
        with fake.lock:
            fake.authorization_seen.append(seen)
        if fake.token is None or seen == f"Bearer {fake.token}":
            return True
        # A careless server echoes what it got: the client must scrub it from its error message.
        self._send(401, json.dumps({"error": f"bad credentials: {seen!r}"}).encode())
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        fake = self.fake
        if not self._authorised():
            return
        if fake.redirect is not None:
            self._send(307, b"{}", {"Location": fake.redirect})
        elif self.path == "/v2/health/ready":
            self._send(200, b"")
        elif self.path == f"/v2/models/{fake.name}":
            self._send(200, json.dumps(fake.metadata()).encode())
        else:
            self._send(404, json.dumps({"error": f"no route {self.path}"}).encode())

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self._authorised():
            return
        if fake.redirect is not None:
            self._send(307, b"{}", {"Location": fake.redirect})
            return
        if self.path != f"/v2/models/{fake.name}/infer":
            self._send(404, json.dumps({"error": f"no route {self.path}"}).encode())
            return
        request = json.loads(body)
        tensor = request["inputs"][0]
        datatype = tensor["datatype"]
        rows = np.asarray(tensor["data"], dtype=DTYPES[datatype]).reshape(tensor["shape"])
        hashes = row_hashes(rows)
        with fake.lock:
            fake.infer_requests += 1
            fake.received.update(hashes)
            # one fault per request, in this order: hold, status, drop, truncate
            hold = fake.hold_after_rows is not None and fake.answered_rows >= fake.hold_after_rows
            fake.held += hold
            status = None if hold else (fake.fail_next.pop(0) if fake.fail_next else fake.always_fail)
            drop = not hold and status is None and fake.drop_next > 0
            fake.drop_next -= drop
            truncate = not hold and status is None and not drop and fake.truncate_next > 0
            fake.truncate_next -= truncate
        if hold:
            fake.release.wait(WAIT_LIMIT)
            self.close_connection = True  # the held request is never answered
            return
        if fake.delay:
            time.sleep(fake.delay)
        if status is not None:
            headers = {"Retry-After": fake.retry_after} if fake.retry_after is not None else {}
            self._send(status, json.dumps({"error": f"injected {status}"}).encode(), headers)
            return
        if drop:
            self.close_connection = True
            return
        payload = fake.answer(body, rows)
        if truncate:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, payload)
        with fake.lock:
            fake.answered.update(hashes)
            fake.answered_rows += len(hashes)
