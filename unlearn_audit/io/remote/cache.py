"""A content-addressed store of an endpoint's answers, so an interrupted audit resumes without re-sending them.

The key of an answer is ``sha256(endpoint URL, metadata sha256, input name/datatype/row shape, output name,
exact input bytes)``: the same bytes sent to the same model (same metadata) get the same key, and anything
else gets another. The value is the answer row's bytes with a ``spec`` (dtype and length) that is checked
on reading, so a cache written for another output layout is never misread.

With a work directory the store is SQLite from the standard library (``oip-answers.sqlite``, WAL journal):
each answered request is committed as one transaction, so a process killed at any moment leaves every
committed answer readable and nothing half-written. Without one, answers live in memory for the model's life.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...errors import ConfigError

CACHE_FILE = "oip-answers.sqlite"
SCHEMA_VERSION = "1"
_CHUNK = 500  # keys per SELECT (SQLite's default variable limit is 32766; stay far below)


class AnswerCache:
    """``key -> (spec, value bytes)``; first write wins (a re-sent input never overwrites its first answer)."""

    def __init__(self, work_dir: str | Path | None = None) -> None:
        self.path: Path | None = None
        self._memory: dict[bytes, tuple[str, bytes]] = {}
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if work_dir is not None:
            self.path = Path(work_dir) / CACHE_FILE
            self._db = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, spec TEXT NOT NULL, value BLOB NOT NULL) "
                "WITHOUT ROWID"
            )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"{path}: cannot be used as the answer cache ({exc}); delete it or choose another work directory"
            ) from exc
        if version != SCHEMA_VERSION:
            db.close()
            raise ConfigError(
                f"{path}: answer cache schema {version!r}, this release writes {SCHEMA_VERSION!r}; delete it or "
                "choose another work directory"
            )
        return db

    def __len__(self) -> int:
        if self._db is None:
            return len(self._memory)
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(count)

    def get_many(self, keys: Sequence[bytes], spec: str) -> dict[bytes, bytes]:
        """The stored values of ``keys`` whose spec matches (others read as missing)."""
        if self._db is None:
            return {k: v[1] for k in keys if (v := self._memory.get(k)) is not None and v[0] == spec}
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, spec, value FROM answers WHERE key IN ({marks})", chunk)
                found.update((bytes(k), bytes(v)) for k, s, v in rows if s == spec)
        return found

    def put_many(self, items: Iterable[tuple[bytes, bytes]], spec: str) -> None:
        """Store answers in one transaction (all or nothing)."""
        pairs = list(items)
        if self._db is None:
            for key, value in pairs:
                self._memory.setdefault(key, (spec, value))
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR IGNORE INTO answers VALUES (?, ?, ?)", [(k, spec, v) for k, v in pairs])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise ConfigError(f"{self.path}: cannot write the answer cache ({exc})") from exc

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None
