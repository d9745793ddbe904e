from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remote.fake_oip import FakeOIPServer


@pytest.fixture
def fake() -> Iterator[FakeOIPServer]:
    """A fresh fake Open Inference Protocol server on 127.0.0.1 (8 features, 10 classes, FP32 logits)."""
    server = FakeOIPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory):  # noqa: ANN201
    """MLServer on 127.0.0.1 serving fmnist-small's original model as logits (``fmnist``) and as
    probabilities (``fmnist-probs``). Skipped when the ``remote-test`` extra is not installed, unless
    UNLEARN_AUDIT_REQUIRE_MLSERVER=1."""
    import importlib.util
    import os

    from tests.conftest import FMNIST
    from tests.remote.mlserver_harness import start_mlserver

    if importlib.util.find_spec("mlserver") is None:
        if os.environ.get("UNLEARN_AUDIT_REQUIRE_MLSERVER") == "1":
            pytest.fail(
                "UNLEARN_AUDIT_REQUIRE_MLSERVER=1 but mlserver is not installed (pip install -e '.[remote-test]')"
            )
        pytest.skip("mlserver is not installed (the remote-test extra)")
    checkpoint = FMNIST / "original.safetensors"
    server = start_mlserver(
        tmp_path_factory.mktemp("mlserver"),
        {"fmnist": (checkpoint, "logits"), "fmnist-probs": (checkpoint, "probabilities")},
    )
    try:
        yield server
    finally:
        server.stop()
