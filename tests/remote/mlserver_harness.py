"""Start MLServer (the Open Inference Protocol server of the ``remote-test`` extra) on 127.0.0.1 in a subprocess,
serving bundled reference models through :mod:`tests.remote.mlserver_runtime`, and stop it reliably."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

STARTUP_TIMEOUT = 180.0  # importing torch in a fresh process on 2 busy cores takes a while
LAUNCH = "import sys; from mlserver.cli import main; sys.argv[0] = 'mlserver'; sys.exit(main())"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v2/health/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class MLServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, model: str) -> str:
        return f"{self.base}/v2/models/{model}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def start_mlserver(root: Path, models: dict[str, tuple[Path, str]]) -> MLServer:
    """Serve ``{name: (checkpoint, "logits" | "probabilities")}`` from ``root`` (a fresh directory)."""
    from unlearn_audit import load_model

    root.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "debug": False,
        "metrics_dir": str(root / ".metrics"),
        "environments_dir": str(root / ".envs"),
    }
    (root / "settings.json").write_text(json.dumps(settings))
    for name, (checkpoint, output) in models.items():
        meta = load_model(checkpoint, device="cpu").meta
        assert meta.input_shape is not None and meta.num_classes is not None
        folder = root / name
        folder.mkdir()
        model_settings = {
            "name": name,
            "implementation": "tests.remote.mlserver_runtime.SafetensorsClassifier",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *meta.input_shape]}],
            "outputs": [{"name": output, "datatype": "FP32", "shape": [-1, meta.num_classes]}],
            "parameters": {"uri": str(checkpoint), "extra": {"output": output}},
        }
        (folder / "model-settings.json").write_text(json.dumps(model_settings))
    log = root / "mlserver.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MLSERVER_DEBUG": "false"}
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "start", str(root)],
            cwd=root,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the server and any workers together
        )
    server = MLServer(process, http_port, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while not all(_model_ready(http_port, name) for name in models):
            if process.poll() is not None:
                raise RuntimeError(f"MLServer exited with code {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"MLServer not ready after {STARTUP_TIMEOUT:.0f} s:\n{server.log_tail()}")
            time.sleep(0.25)
    except BaseException:
        server.stop()
        raise
    return server


def _model_ready(port: int, name: str) -> bool:
    if not _ready(port):
        return False
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", f"/v2/models/{name}/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
