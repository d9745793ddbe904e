"""The remote model client against a fake Open Inference Protocol server: answers, batching, caching,
budgets, retries and faults. Every test has a timeout; every fault loop is bounded by the client's settings."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sqlite3
import ssl
import subprocess
import time

import numpy as np
import pytest
import torch

from tests.remote.fake_oip import FakeOIPServer, row_hashes
from unlearn_audit.errors import (
    ConfigError,
    EndpointProtocolError,
    EndpointUnavailableError,
    InconsistentAnswerError,
    InputError,
    QueryBudgetError,
    RemoteModelError,
    UnlearnAuditError,
)
from unlearn_audit.io.remote import RemoteModel, RemoteSettings

pytestmark = pytest.mark.timeout(60)
FAST = {"backoff": 0.01, "backoff_max": 0.05, "timeout": 5.0}


def rows(n: int, seed: int = 0, shape: tuple[int, ...] = (8,)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def settings(**changes: object) -> RemoteSettings:
    return RemoteSettings(**{**FAST, **changes})  # type: ignore[arg-type]


def expected_labels(server: FakeOIPServer, x: np.ndarray) -> np.ndarray:
    return np.asarray(server.model(x)).argmax(axis=1)


def assert_one_line(error: BaseException, *fragments: str) -> None:
    text = str(error)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ------------------------------------------------------------------------------------------- answers


def test_labels_and_scores_match_the_served_model(fake):
    x = rows(50)
    with RemoteModel(fake.url, settings()) as model:
        labels = model.predict(x)
        scores = model.predict_scores(x)
        assert model.output_kind == "logits" and model.num_classes == 10 and model.input_shape == (8,)
        assert model.meta.path == fake.url and model.meta.num_classes == 10
    direct = fake.model(x).astype(np.float32)
    assert labels.dtype == torch.int64
    assert np.array_equal(labels.numpy(), direct.argmax(axis=1))
    assert len(set(labels.tolist())) > 2  # the check below is not trivially true
    assert np.array_equal(scores.numpy(), direct)  # FP32 over JSON, bit for bit


def test_float32_inputs_arrive_bit_for_bit(fake):
    """Shortest round-trip repr of each float32 (as a double) is parsed back to the same float32 by the server."""
    special = np.array([0.0, -0.0, 1e-45, 1.17549435e-38, 1 / 3, 0.1, 1 - 2**-24, 1.0], dtype=np.float32)
    x = np.concatenate([rows(20), np.tile(special, (2, 1))]).astype(np.float32)
    with RemoteModel(fake.url, settings(recheck_rate=0.0)) as model:
        model.predict(x)
    assert set(fake.received) == set(row_hashes(x))


@pytest.mark.parametrize(("batch_size", "concurrency"), [(1, 1), (7, 3), (64, 8)])
def test_batching_and_concurrency_do_not_change_answers(fake, batch_size, concurrency):
    x = rows(60, seed=3)
    with RemoteModel(fake.url, settings(batch_size=batch_size, concurrency=concurrency)) as model:
        scores = model.predict_scores(x).numpy()
        usage = model.usage_dict()
    assert np.array_equal(scores, fake.model(x).astype(np.float32))
    assert fake.infer_requests == math.ceil(60 / batch_size)
    assert usage["rows_sent"] == usage["rows_answered"] == 60


def test_duplicates_and_repeats_are_answered_from_the_cache(fake):
    x = rows(10)
    doubled = np.concatenate([x, x[:4]])
    with RemoteModel(fake.url, settings(recheck_rate=0.0)) as model:
        first = model.predict(doubled)
        again = model.predict(x)
        usage = model.usage_dict()
    assert np.array_equal(first[:10], again) and np.array_equal(first[10:], first[:4])
    assert sum(fake.received.values()) == 10  # every distinct input sent once
    assert usage == {**usage, "rows_requested": 24, "unique_rows": 20, "cache_hits": 10, "rows_sent": 10}


def test_probabilities_are_detected(fake):
    def softmax(x: np.ndarray) -> np.ndarray:
        scores = (x.reshape(len(x), -1) - 0.5) @ np.arange(80.0).reshape(8, 10) / 10
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    fake.model = softmax
    x = rows(30)
    with RemoteModel(fake.url, settings()) as model:
        labels = model.predict(x)
        assert model.output_kind == "probabilities"
        probabilities = model.predict_probabilities(x)
    assert np.array_equal(labels.numpy(), softmax(x).argmax(axis=1))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(30), atol=1e-5)


def test_declared_probabilities_that_are_logits_fail(fake):
    with RemoteModel(fake.url, settings(output="probabilities")) as model:
        with pytest.raises(EndpointProtocolError) as info:
            model.predict(rows(5))
    assert_one_line(info.value, fake.url, "output=probabilities", "declare output=logits")


def test_label_only_endpoints(fake):
    fake.output_datatype = "INT64"
    scores = fake.model
    fake.model = lambda x: scores(x).argmax(axis=1)
    x = rows(20)
    with RemoteModel(fake.url, settings()) as model:
        assert model.labels_only
        assert np.array_equal(model.predict(x).numpy(), scores(x).argmax(axis=1))
        with pytest.raises(ConfigError, match="class labels only"):
            model.predict_scores(x)


def test_uint8_inputs_are_quantised_and_say_so(fake):
    fake.datatype = "UINT8"
    x = rows(12)
    with RemoteModel(fake.url, settings(recheck_rate=0.0)) as model:
        model.predict(x)
        assert [w.code for w in model.warnings] == ["quantised_input"]
    sent = np.round(x * 255).astype(np.uint8)
    assert set(fake.received) == set(row_hashes(sent))


def test_inputs_of_the_wrong_shape_or_with_nan_are_refused_before_sending(fake):
    with RemoteModel(fake.url, settings()) as model:
        with pytest.raises(InputError) as info:
            model.predict(rows(3, shape=(9,)))
        assert_one_line(info.value, "[8]", "[9]")
        bad = rows(3)
        bad[1, 2] = np.nan
        with pytest.raises(InputError, match="NaN"):
            model.predict(bad)
    assert fake.infer_requests == 0


def test_normalisation_is_applied_on_the_client(fake):
    x = rows(10)
    with RemoteModel(fake.url, settings(mean=(0.5,), std=(0.25,), recheck_rate=0.0)) as model:
        model.predict(x)
    assert set(fake.received) == set(row_hashes(((torch.from_numpy(x) - 0.5) / 0.25).numpy()))


# ---------------------------------------------------------------------------------------------- budget


def test_max_queries_is_enforced_before_sending(fake):
    with RemoteModel(fake.url, settings(max_queries=100, recheck_rate=0.0)) as model:
        with pytest.raises(QueryBudgetError) as info:
            model.predict(rows(101))
        assert_one_line(info.value, fake.url, "max_queries=100", "nothing was sent")
        assert fake.infer_requests == 0
        model.predict(rows(80, seed=1))
        model.predict(rows(80, seed=1))  # cached: costs nothing
        with pytest.raises(QueryBudgetError):
            model.predict(rows(30, seed=2))
        assert model.remaining_queries == 20
        model.predict(rows(20, seed=2))
        assert model.remaining_queries == 0
    assert sum(fake.received.values()) == 100


def test_rechecks_give_way_to_the_budget(fake):
    with RemoteModel(fake.url, settings(max_queries=100, recheck_rate=0.5)) as model:
        model.predict(rows(50, seed=1))
        model.predict(rows(50, seed=2))  # 50 new rows + 25 rechecks would not fit: the rechecks are dropped
        assert model.usage_dict()["rechecks"] == 0 and model.remaining_queries == 0
        assert [w.code for w in model.warnings] == ["rechecks_skipped"]


def test_retries_count_against_the_budget(fake):
    fake.fail_next = [503, 503]
    with RemoteModel(fake.url, settings(max_queries=25, batch_size=10, recheck_rate=0.0)) as model:
        with pytest.raises(QueryBudgetError, match="already sent"):
            model.predict(rows(10))
    assert sum(fake.received.values()) == 20  # the third attempt was never made


# --------------------------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [503, 429, 500, 502, 504])
def test_transient_statuses_are_retried(fake, status):
    fake.fail_next = [status, status]
    x = rows(16)
    with RemoteModel(fake.url, settings(batch_size=16)) as model:
        labels = model.predict(x)
        usage = model.usage_dict()
    assert np.array_equal(labels.numpy(), expected_labels(fake, x))
    assert usage["retries"] == 2 and usage["rows_sent"] == 48 and usage["rows_answered"] == 16


def test_a_persistent_503_gives_up_after_the_retry_limit(fake):
    fake.always_fail = 503
    started = time.monotonic()
    with RemoteModel(fake.url, settings(retries=3)) as model:
        with pytest.raises(EndpointUnavailableError) as info:
            model.predict(rows(4))
    assert_one_line(info.value, fake.url, "gave up", "after 3 retries", "HTTP 503", "injected 503")
    assert fake.infer_requests == 4
    assert time.monotonic() - started < 10


def test_the_retry_budget_bounds_all_requests_together(fake):
    fake.always_fail = 429
    with RemoteModel(fake.url, settings(retries=5, retry_budget=3, batch_size=2, concurrency=1)) as model:
        with pytest.raises(EndpointUnavailableError) as info:
            model.predict(rows(8))
    assert_one_line(info.value, "retry budget of 3", "HTTP 429")
    # the first try and three retries; a second request may have started before the first gave up
    assert fake.infer_requests in (4, 5)


def test_retry_after_is_honoured_within_the_cap(fake):
    fake.fail_next = [429]
    fake.retry_after = "0.3"
    started = time.monotonic()
    with RemoteModel(fake.url, settings(backoff_max=1.0)) as model:
        model.predict(rows(2))
    assert time.monotonic() - started >= 0.3


def test_backoff_is_exponential_and_seeded():
    from unlearn_audit.io.remote.endpoint import RetryPolicy, Transport, parse_endpoint

    delays = []
    for _ in range(2):
        transport = Transport(
            parse_endpoint("http://127.0.0.1:9/v2/models/m"),
            timeout=1,
            retry=RetryPolicy(backoff=1.0, backoff_max=100.0),
            seed=5,
        )
        transport.stop.wait = lambda delay: delays.append(delay) or False  # type: ignore[method-assign]
        for attempt in range(4):
            transport._wait_before_retry(attempt, "x", None, "POST", "/p")
    first, second = delays[:4], delays[4:]
    assert first == second  # same seed, same jitter
    assert all(2**a * 0.5 <= d < 2**a for a, d in enumerate(first))


@pytest.mark.parametrize("fault", ["drop_next", "truncate_next"])
def test_a_connection_dropped_mid_request_or_mid_response_is_retried(fake, fault):
    setattr(fake, fault, 1)  # close after reading the request, or after half of the answer
    x = rows(16)
    with RemoteModel(fake.url, settings(batch_size=8, concurrency=1)) as model:
        labels = model.predict(x)
        assert model.usage_dict()["retries"] == 1
    assert np.array_equal(labels.numpy(), expected_labels(fake, x))
    assert sum(fake.answered.values()) == 16


def test_slow_responses_within_the_timeout_succeed(fake):
    fake.delay = 0.2
    x = rows(8)
    with RemoteModel(fake.url, settings(timeout=3.0, batch_size=4, concurrency=2)) as model:
        assert np.array_equal(model.predict(x).numpy(), expected_labels(fake, x))
        assert model.usage_dict()["retries"] == 0


def test_responses_slower_than_the_timeout_give_up(fake):
    fake.delay = 1.5
    started = time.monotonic()
    with RemoteModel(fake.url, settings(timeout=0.3, retries=2)) as model:
        with pytest.raises(EndpointUnavailableError) as info:
            model.predict(rows(4))
    assert_one_line(info.value, "gave up", "timed out")
    assert time.monotonic() - started < 8


def test_an_unreachable_endpoint_gives_up():
    with FakeOIPServer() as server:
        url = server.url
    started = time.monotonic()
    with pytest.raises(EndpointUnavailableError) as info:
        RemoteModel(url, settings(retries=2))
    assert_one_line(info.value, url, "gave up on GET /v2/health/ready", "connection error")
    assert time.monotonic() - started < 5


def test_an_error_in_one_request_stops_the_others(fake):
    fake.fail_next = [400]
    fake.delay = 0.05
    with RemoteModel(fake.url, settings(batch_size=2, concurrency=4)) as model:
        with pytest.raises(EndpointProtocolError) as info:
            model.predict(rows(200))
    assert_one_line(info.value, "HTTP 400", "injected 400")
    assert fake.infer_requests < 100 // 2  # the window of in-flight requests, not all 100


# ---------------------------------------------------------------------------------------- bad answers

CORRUPTIONS = {
    "malformed JSON": (lambda d: b'{"outputs": [', "malformed JSON"),
    "html": (lambda d: b"<html>bad gateway</html>", "malformed JSON"),
    "nested too deeply": (lambda d: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "not UTF-8": (lambda d: b'{"outputs": "\xff\xfe"}', "malformed JSON"),
    "no outputs": (lambda d: json.dumps({"model_name": "fake"}).encode(), "no 'outputs' list"),
    "wrong output name": (
        lambda d: json.dumps({"outputs": [{**d["outputs"][0], "name": "other"}]}).encode(),
        "no output named 'logits'",
    ),
    "wrong datatype": (
        lambda d: json.dumps({"outputs": [{**d["outputs"][0], "datatype": "FP64"}]}).encode(),
        "datatype FP64 but the model metadata declares FP32",
    ),
    "wrong shape": (
        lambda d: json.dumps(
            {"outputs": [{**d["outputs"][0], "shape": [3, 10], "data": d["outputs"][0]["data"][:30]}]}
        ).encode(),
        "shape [3, 10] for a request of 4 rows",
    ),
    "short data": (
        lambda d: json.dumps({"outputs": [{**d["outputs"][0], "data": d["outputs"][0]["data"][:-1]}]}).encode(),
        "holds 39 values",
    ),
    "NaN": (
        lambda d: json.dumps(
            {"outputs": [{**d["outputs"][0], "data": [float("nan")] + d["outputs"][0]["data"][1:]}]}
        ).encode(),
        "NaN or infinite",
    ),
    "infinity": (
        lambda d: json.dumps(
            {"outputs": [{**d["outputs"][0], "data": d["outputs"][0]["data"][:-1] + [float("inf")]}]}
        ).encode(),
        "NaN or infinite values (first in row 3",
    ),
    "null": (
        lambda d: json.dumps({"outputs": [{**d["outputs"][0], "data": [None] + d["outputs"][0]["data"][1:]}]}).encode(),
        "non-numeric",
    ),
    "overflow": (
        lambda d: json.dumps(
            {"outputs": [{**d["outputs"][0], "data": [1e300] + d["outputs"][0]["data"][1:]}]}
        ).encode(),
        "overflow FP32",
    ),
    "strings": (
        lambda d: json.dumps({"outputs": [{**d["outputs"][0], "data": ["1.0"] * 40}]}).encode(),
        "non-numeric",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_unusable_answers_give_one_clear_error(fake, case):
    corrupt, fragment = CORRUPTIONS[case]
    fake.corrupt = corrupt
    with RemoteModel(fake.url, settings(batch_size=4)) as model:
        with pytest.raises(EndpointProtocolError) as info:
            model.predict(rows(4))
    assert_one_line(info.value, fake.url, fragment)
    assert fake.infer_requests == 1  # a broken answer is not retried


def test_bad_metadata_gives_one_clear_error(fake):
    fake.metadata_extra = {"inputs": [{"name": "input", "datatype": "STRING", "shape": [-1, 8]}]}
    with pytest.raises(ConfigError) as info:
        RemoteModel(fake.url, settings())
    assert_one_line(info.value, "datatype STRING")
    fake.metadata_extra = {"inputs": []}
    with pytest.raises(EndpointProtocolError, match="lists no inputs"):
        RemoteModel(fake.url, settings())
    fake.metadata_extra = {
        "outputs": [
            {"name": "a", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "b", "datatype": "FP32", "shape": [-1, 3]},
        ]
    }
    with pytest.raises(EndpointProtocolError, match="name the one to use"):
        RemoteModel(fake.url, settings())


def test_num_classes_must_match_the_metadata(fake):
    with pytest.raises(ConfigError) as info:
        RemoteModel(fake.url, settings(num_classes=7))
    assert_one_line(info.value, "10 classes", "num_classes=7")


def test_redirects_are_never_followed(fake):
    with FakeOIPServer() as elsewhere:
        fake.redirect = elsewhere.url
        with pytest.raises(EndpointUnavailableError) as info:
            RemoteModel(fake.url, settings())
        assert_one_line(info.value, "HTTP 307", "never followed")
        assert elsewhere.authorization_seen == []  # the other host was never contacted


def test_wrong_model_name_is_a_clear_error(fake):
    with pytest.raises(EndpointUnavailableError) as info:
        RemoteModel(fake.url + "x", settings())
    assert_one_line(info.value, "HTTP 404", "check the model name")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://h:1/v2/models/m", "scheme"),
        ("http://user:secret@h:1/v2/models/m", "credentials in the URL"),
        ("http://h:1/v1/models/m:predict", "not a model path"),
        ("http://h:1/v2/models/m?x=1", "query string"),
        ("http://h:99999/v2/models/m", "Port out of range"),
        ("http:///v2/models/m", "no host"),
    ],
)
def test_bad_endpoint_urls(url, fragment):
    with pytest.raises(ConfigError) as info:
        RemoteModel(url, settings(), connect=False)
    assert_one_line(info.value, fragment)
    assert "secret" not in str(info.value)


def test_endpoint_urls_parse():
    from unlearn_audit.io.remote import is_endpoint, parse_endpoint

    e = parse_endpoint("HTTPS://Example.org/v2/models/my%20model/versions/3/")
    assert (e.scheme, e.host, e.port, e.model, e.version) == ("https", "example.org", 443, "my model", "3")
    assert e.url == "https://example.org:443/v2/models/my%20model/versions/3"
    assert parse_endpoint("http://[::1]:8080/v2/models/m").netloc == "[::1]:8080"
    assert is_endpoint("http://x") and not is_endpoint("models/http.safetensors")


# ------------------------------------------------------------------------------------------ consistency


def test_a_server_that_changes_its_answers_is_reported(fake):
    fake.change_after_rows = 40
    original = fake.model
    fake.changed_model = lambda x: -original(x)
    with RemoteModel(fake.url, settings(recheck_rate=0.5, batch_size=10)) as model:
        model.predict(rows(40, seed=1))
        assert model.warnings == []
        model.predict(rows(40, seed=2))
        usage = model.usage_dict()
        assert usage["rechecks"] == 20 and usage["inconsistent"] == 20
        (warning,) = model.warnings
        assert warning.code == "inconsistent_answers"
        assert "20 of 20 re-sent inputs got a different answer" in warning.message and "\n" not in warning.message
        assert warning.to_dict() in model.to_dict()["warnings"]


def test_changed_answers_can_be_an_error(fake):
    original = fake.model
    fake.change_after_rows = 20
    fake.changed_model = lambda x: original(x) + 1e-3 * np.arange(10)
    with RemoteModel(fake.url, settings(recheck_rate=1.0, on_inconsistent="error")) as model:
        model.predict(rows(20, seed=1))
        with pytest.raises(InconsistentAnswerError) as info:
            model.predict(rows(20, seed=2))
    assert_one_line(info.value, fake.url, "different answer", "max |Δscore|")


def test_rechecks_are_a_seeded_small_share(fake):
    sent = []
    for _ in range(2):
        with FakeOIPServer() as server:
            with RemoteModel(server.url, settings(recheck_rate=0.05, seed=3)) as model:
                for seed in range(4):
                    model.predict(rows(100, seed=seed))
                assert model.usage_dict()["rechecks"] == 15  # ceil(5 % of 100) in each of calls 2..4
                assert model.warnings == []
            sent.append(dict(server.received))
    assert sent[0] == sent[1]  # the same inputs were re-checked in both runs
    assert sum(c - 1 for c in sent[0].values()) == 15


# ------------------------------------------------------------------------------------------------ cache


def test_the_work_dir_cache_survives_a_new_model_object(fake, tmp_path):
    x = rows(30)
    with RemoteModel(fake.url, settings(), work_dir=tmp_path) as model:
        first = model.predict_scores(x)
    with RemoteModel(fake.url, settings(), work_dir=tmp_path) as model:
        second = model.predict_scores(x)
        assert model.usage_dict()["rows_sent"] == 0 and model.usage_dict()["cache_hits"] == 30
    assert torch.equal(first, second)
    assert sum(fake.received.values()) == 30


def test_cache_keys_include_the_model_metadata(fake, tmp_path):
    x = rows(10)
    with RemoteModel(fake.url, settings(recheck_rate=0.0), work_dir=tmp_path) as model:
        model.predict(x)
    fake.metadata_extra = {"versions": ["2"]}  # a redeployed model
    with RemoteModel(fake.url, settings(recheck_rate=0.0), work_dir=tmp_path) as model:
        model.predict(x)
        assert model.usage_dict()["rows_sent"] == 10
    assert set(fake.received.values()) == {2}


def test_a_broken_cache_file_is_a_clear_error(fake, tmp_path):
    (tmp_path / "oip-answers.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError) as info:
        RemoteModel(fake.url, settings(), work_dir=tmp_path)
    assert_one_line(info.value, "oip-answers.sqlite", "delete it")


# ------------------------------------------------------------------------------------------------ token

TOKEN = "s3cr3t-Token-4f9a1c"


def test_the_token_is_sent_and_never_written_anywhere(fake, tmp_path, monkeypatch, caplog, capsys):
    fake.token = TOKEN
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    fake.fail_next = [503]
    texts = []
    with RemoteModel(fake.url, settings(token_env="AUDIT_TOKEN"), work_dir=tmp_path) as model:
        model.predict(rows(12))
        texts += [
            json.dumps(model.to_dict()),
            repr(model),
            repr(model._transport),
            str(model.meta),
            str(model.settings),
        ]
    assert set(fake.authorization_seen) == {f"Bearer {TOKEN}"}
    # a wrong token: the server echoes the header it got; the error message must not carry it on
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN + "x")
    with pytest.raises(EndpointUnavailableError) as info:
        RemoteModel(fake.url, settings(token_env="AUDIT_TOKEN"))
    texts.append(str(info.value))
    fake.token = None  # a server that accepts anything, but a 400 that echoes the request headers
    fake.corrupt = lambda d: json.dumps({"error": f"echo Bearer {TOKEN}"}).encode()
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN)
    with RemoteModel(fake.url, settings(token_env="AUDIT_TOKEN")) as model:
        with pytest.raises(EndpointProtocolError) as protocol_error:
            model.predict(rows(3, seed=9))
    texts.append(str(protocol_error.value))
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    files = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert files  # the cache was written
    assert TOKEN.encode() not in files
    for text in texts:
        assert TOKEN not in text
    assert "***" in texts[-4]  # the echoed token was scrubbed, not just absent


def test_a_missing_token_variable_is_a_clear_error(fake, monkeypatch):
    monkeypatch.delenv("AUDIT_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        RemoteModel(fake.url, settings(token_env="AUDIT_TOKEN"))
    assert_one_line(info.value, "AUDIT_TOKEN", "not set")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        settings(token_env="Bearer abc.def")
    fake.token = TOKEN
    with pytest.raises(EndpointUnavailableError) as denied:
        RemoteModel(fake.url, settings())
    assert_one_line(denied.value, "HTTP 401", "--token-env")


def test_a_token_over_plain_http_to_another_host_is_a_warning(monkeypatch):
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN)
    model = RemoteModel("http://audit.example:8080/v2/models/m", settings(token_env="AUDIT_TOKEN"), connect=False)
    assert [w.code for w in model.warnings] == ["token_over_http"]
    assert TOKEN not in model.warnings[0].message
    local = RemoteModel("http://127.0.0.1:8080/v2/models/m", settings(token_env="AUDIT_TOKEN"), connect=False)
    assert local.warnings == []


def test_errors_are_unlearn_audit_errors():
    from unlearn_audit.cli.app import failure

    for error in (EndpointProtocolError, EndpointUnavailableError, InconsistentAnswerError, QueryBudgetError):
        assert issubclass(error, RemoteModelError) and issubclass(error, UnlearnAuditError)
        assert failure(error("x")) == (2, "x")  # the CLI's exit-code table: exit 2 and the one-line message


def test_settings_are_validated():
    for bad, fragment in [
        ({"batch_size": 0}, "batch_size"),
        ({"concurrency": -1}, "concurrency"),
        ({"timeout": 0.0}, "timeout"),
        ({"max_queries": 0}, "max_queries"),
        ({"recheck_rate": 1.5}, "recheck_rate"),
        ({"output": "softmax"}, "output"),
        ({"mean": (0.5,)}, "mean/std"),
        ({"retries": -1}, "retries"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            RemoteSettings(**bad)  # type: ignore[arg-type]


def test_the_cache_is_sqlite_with_committed_rows(fake, tmp_path):
    with RemoteModel(fake.url, settings(batch_size=5, recheck_rate=0.0), work_dir=tmp_path) as model:
        model.predict(rows(23))
    with sqlite3.connect(tmp_path / "oip-answers.sqlite") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM answers").fetchone()
        specs = {s for (s,) in db.execute("SELECT DISTINCT spec FROM answers")}
    assert count == 23 and specs == {"scores:<f4"}


def test_https_with_the_servers_certificate_authority(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    x = rows(10)
    with FakeOIPServer(tls=context) as server:
        assert server.url.startswith("https://")
        with RemoteModel(server.url, settings(ca_file=str(cert))) as model:
            assert np.array_equal(model.predict(x).numpy(), expected_labels(server, x))
        with pytest.raises(EndpointUnavailableError) as info:
            RemoteModel(server.url, settings())  # the system's CAs do not know this certificate
        assert_one_line(info.value, "TLS certificate not trusted", "CA file")
    with pytest.raises(ConfigError, match="only applies to https"):
        RemoteModel("http://127.0.0.1:9/v2/models/m", settings(ca_file=str(cert)), connect=False)
