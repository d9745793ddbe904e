"""The remote model against a real Open Inference Protocol server: MLServer on 127.0.0.1 serving the bundled
fmnist-small original model. Its answers must equal local inference on the same weights, perturbed inputs
included, and faults injected by a proxy in front of it must be survived or reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import FMNIST
from tests.remote.fake_oip import FakeOIPServer
from unlearn_audit import load_model, load_samples
from unlearn_audit.inference import predict, predict_logits
from unlearn_audit.io.remote import RemoteModel, RemoteSettings
from unlearn_audit.probes.base import ChunkContext
from unlearn_audit.probes.keys import sample_keys, unit_seeds
from unlearn_audit.probes.random import GaussianProbe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
FAST = {"backoff": 0.01, "backoff_max": 0.1, "timeout": 60.0}


@pytest.fixture(scope="module")
def local():
    return load_model(FMNIST / "original.safetensors", device="cpu")


@pytest.fixture(scope="module")
def forget():
    return load_samples(FMNIST / "forget.npz")


def test_remote_predictions_equal_local_inference_on_the_forget_set(mlserver, local, forget):
    with RemoteModel(mlserver.url("fmnist"), RemoteSettings(**FAST)) as remote:
        labels = remote.predict(forget.x)
        scores = remote.predict_scores(forget.x)
        assert remote.output_kind == "logits" and remote.num_classes == 10 and remote.input_shape == (1, 28, 28)
        usage = remote.usage_dict()
    assert torch.equal(labels, predict(local, forget.x))
    local_scores = predict_logits(local, forget.x, batch_size=64)  # the server sees the same 64-row batches
    assert torch.allclose(scores, local_scores, rtol=0, atol=1e-5), (scores - local_scores).abs().max()
    assert usage["rows_sent"] == usage["rows_answered"] == len(forget)  # the second call came from the cache


def test_remote_gaussian_counts_equal_local_counts(mlserver, local, forget):
    """The engine's keyed Gaussian rows (same seed), counted on the endpoint and locally: identical counts."""
    n, taus, draws = 60, torch.tensor([0.0, 4 / 255, 8 / 255]), 10
    x, y = forget.x[:n], forget.y[:n]
    ctx = ChunkContext(
        x=x,
        y=y,
        taus=taus,
        unit_seeds=unit_seeds(0, "gaussian", sample_keys(forget.ids[:n]), range(len(taus))),
        draws=draws,
        num_classes=10,
        bounds=(0.0, 1.0),
        batch_size=256,
        device=torch.device("cpu"),
    )
    remote_counts = np.zeros((n, len(taus)), dtype=np.int64)
    local_counts = np.zeros_like(remote_counts)
    with RemoteModel(mlserver.url("fmnist"), RemoteSettings(**FAST, batch_size=50, concurrency=3)) as remote:
        for batch in GaussianProbe().rows(ctx):
            hit_remote = (remote.predict(batch.x) == y[batch.sample]).long() * batch.weight
            hit_local = (predict(local, batch.x) == y[batch.sample]).long() * batch.weight
            np.add.at(remote_counts, (batch.sample.numpy(), batch.tau.numpy()), hit_remote.numpy())
            np.add.at(local_counts, (batch.sample.numpy(), batch.tau.numpy()), hit_local.numpy())
        usage = remote.usage_dict()
    assert np.array_equal(remote_counts, local_counts)
    assert ((remote_counts > 0) & (remote_counts < draws)).any()  # the noise changed some answers: not trivial
    assert usage["unique_rows"] == n * (1 + 2 * draws)


def test_probability_outputs_are_read_as_probabilities(mlserver, local, forget):
    x = forget.x[:100]
    with RemoteModel(mlserver.url("fmnist-probs"), RemoteSettings(**FAST)) as remote:
        labels = remote.predict(x)
        assert remote.output_kind == "probabilities"
        probabilities = remote.predict_probabilities(x)
    assert torch.equal(labels, predict(local, x))
    assert torch.allclose(probabilities, predict_logits(local, x).softmax(dim=1), atol=1e-6)


@pytest.mark.parametrize(("batch_size", "concurrency"), [(1, 1), (33, 4)])
def test_batch_size_and_concurrency_do_not_change_labels(mlserver, local, forget, batch_size, concurrency):
    x = forget.x[:66]
    with RemoteModel(
        mlserver.url("fmnist"), RemoteSettings(**FAST, batch_size=batch_size, concurrency=concurrency)
    ) as remote:
        assert torch.equal(remote.predict(x), predict(local, x))


def test_faults_in_front_of_the_real_server(mlserver, local, forget, tmp_path):
    """503s, 429s, a connection dropped mid-request, a response cut off, slow answers: same labels as local."""
    x = forget.x[:96]
    with FakeOIPServer(name="fmnist", upstream=f"127.0.0.1:{mlserver.port}") as proxy:
        proxy.fail_next = [503, 429, 503]
        proxy.drop_next = 1
        proxy.truncate_next = 1
        proxy.delay = 0.05
        settings = RemoteSettings(**FAST, batch_size=16, concurrency=2)
        with RemoteModel(proxy.url, settings, work_dir=tmp_path) as remote:
            labels = remote.predict(x)
            usage = remote.usage_dict()
    assert torch.equal(labels, predict(local, x))
    assert usage["retries"] == 5 and usage["rows_answered"] == 96
    assert set(proxy.answered.values()) == {1}


def test_a_real_server_replaced_mid_audit_is_detected(mlserver, forget):
    with FakeOIPServer(name="fmnist", upstream=f"127.0.0.1:{mlserver.port}") as proxy:
        proxy.change_after_rows = 64
        proxy.changed_model = lambda rows: np.tile(np.arange(10.0), (len(rows), 1))  # "always class 9"
        with RemoteModel(proxy.url, RemoteSettings(**FAST, recheck_rate=0.25)) as remote:
            remote.predict(forget.x[:64])
            remote.predict(forget.x[64:128])
            (warning,) = remote.warnings
    assert warning.code == "inconsistent_answers" and "16 of 16 re-sent inputs" in warning.message
