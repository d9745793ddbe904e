"""A remote run killed mid-way resumes from its work directory without re-sending any input the server had
already answered (counted per input hash by the test server)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.remote.fake_oip import FakeOIPServer, row_hashes
from tests.remote.resume_client import inputs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CLIENT = Path(__file__).with_name("resume_client.py")
ROWS, CALL = 240, 64  # 4 calls of batches of 8 rows, 2 threads


def client(url: str, work_dir: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(CLIENT), url, str(work_dir), str(out), str(ROWS), str(CALL)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def cached_rows(work_dir: Path) -> int:
    path = work_dir / "oip-answers.sqlite"
    if not path.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.Error:
        return -1


def test_a_killed_client_resumes_without_repeating_answered_queries(tmp_path):
    work_dir, out = tmp_path / "work", tmp_path / "out.json"
    x = inputs(ROWS)
    with FakeOIPServer() as server:
        server.hold_after_rows = 104  # mid-way through the second call
        first = client(server.url, work_dir, out)
        try:
            # wait until both worker threads are parked in held requests and every answer is committed
            server.wait_for(lambda: server.held >= 2 or first.poll() is not None, timeout=90)
            server.wait_for(lambda: cached_rows(work_dir) == server.answered_rows or first.poll() is not None, 30)
            assert first.poll() is None, first.communicate()
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=30)
        answered_before = server.answered_rows
        # two requests that arrive together may both pass the threshold: 104 or 112 rows were answered
        assert answered_before in (104, 112) and not out.exists()
        server.hold_after_rows = None
        server.release.set()  # the held requests end without an answer
        second = client(server.url, work_dir, out)
        stdout, stderr = second.communicate(timeout=90)
        assert second.returncode == 0, stderr.decode()
    result = json.loads(out.read_text())
    assert result["labels"] == server.model(x).argmax(axis=1).tolist()
    # every input was answered exactly once over both runs; only the held (never answered) ones were sent twice
    assert set(server.answered) == set(row_hashes(x))
    assert set(server.answered.values()) == {1}
    resent = {h for h, count in server.received.items() if count > 1}
    assert resent and all(server.received[h] == 2 for h in resent)
    assert len(resent) <= 2 * 8  # at most the two held batches
    usage = result["usage"]
    assert usage["cache_hits"] == answered_before
    assert usage["rows_sent"] == usage["rows_answered"] == ROWS - answered_before
    assert not np.any(np.isnan(result["labels"]))
