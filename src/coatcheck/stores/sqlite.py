"""``sqlite:///path``: the embedded default, one file in WAL mode.

Safe with several threads and processes: each thread of each process opens
its own connection, and read-modify-write runs under ``BEGIN IMMEDIATE``.

Reads are cached per connection and checked with ``PRAGMA data_version``,
which changes whenever another connection (of any process) commits: a hit
costs that pragma instead of a query, and is never stale. This connection's
own writes drop its cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Set
from pathlib import Path
from typing import Any

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError, StoreUnavailable
from ..core.records import RecordKind, SessionRecord
from ..core.sqlite import BUSY_TIMEOUT_S, create_private, prepare
from .base import (
    LEGACY_KINDS,
    DecodedRecords,
    SessionStore,
    check_record,
    check_save_arguments,
    merge,
)

#: 2 added ``kind``; files of version 1 are upgraded in place at connect.
SCHEMA_VERSION = 2
_TABLE = """
CREATE TABLE IF NOT EXISTS coatcheck_sessions (
    key TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    user_id TEXT,
    kind TEXT NOT NULL DEFAULT 'session',
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    meta TEXT NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID
"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS coatcheck_sessions_user "
    "ON coatcheck_sessions (user_id) WHERE user_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS coatcheck_sessions_expiry ON coatcheck_sessions (expires_at)",
    # count(kind) reads this index alone.
    "CREATE INDEX IF NOT EXISTS coatcheck_sessions_kind ON coatcheck_sessions (kind, expires_at)",
)
_SELECT = (
    "SELECT key, handle, user_id, kind, created_at, last_seen_at, expires_at, meta, data "
    "FROM coatcheck_sessions "
)
# Completed by "INSERT" or "INSERT OR REPLACE" in front.
_INTO = (
    " INTO coatcheck_sessions "
    "(key, handle, user_id, kind, created_at, last_seen_at, expires_at, meta, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
)
#: Rows cached per connection, at most (the oldest go first beyond).
_CACHE_ENTRIES = 10_000
#: Expired rows are purged by the store itself at most this often (seconds).
PURGE_INTERVAL = 300.0


class SQLiteSessionStore(SessionStore):
    """Keep records in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.path = Path(path)
        self._local = threading.local()
        self._schema_ready = False
        self._file_ready = False
        self._schema_lock = threading.Lock()
        self._next_purge = 0.0

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> SQLiteSessionStore:
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ConfigurationError(
                f"a SQLite store URL is sqlite:///relative/path or sqlite:////absolute/path, "
                f"not {url!r}"
            )
        return cls(url[len(prefix) :], clock=clock)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        with self._schema_lock:
            if not self._file_ready:
                # Once per store, before this process has any connection to lose locks.
                create_private(self.path)  # session records: for this user's eyes only
                self._file_ready = True
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        prepare(conn)
        conn.execute("PRAGMA mmap_size = 268435456")  # reads from the page cache, not read()
        self._local.conn, self._local.pid = conn, os.getpid()
        self._local.cache, self._local.version = {}, None
        self._local.decoded = DecodedRecords(_CACHE_ENTRIES)
        with self._schema_lock:
            if not self._schema_ready:
                _prepare_schema(conn)
                self._schema_ready = True
        return conn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connect()
        except sqlite3.Error as exc:
            self._forget_reads()
            raise StoreUnavailable(f"the SQLite session store failed: {exc}") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Yield the connection for a write; this connection's cached reads go."""
        with self._db() as conn:
            self._forget_reads()
            yield conn

    def _forget_reads(self) -> None:
        cache = getattr(self._local, "cache", None)
        if cache:
            cache.clear()
            self._local.decoded.forget(None)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def get(self, key: str) -> SessionRecord | None:
        with self._db() as conn:
            row = self._row(conn, self._fresh_cache(conn), key)
        return self._decoded(key, row)

    def get_pair(
        self, key: str, then: Callable[[SessionRecord], str | None]
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """Read both records after one check of ``PRAGMA data_version``."""
        with self._db() as conn:
            cache = self._fresh_cache(conn)
            row = self._row(conn, cache, key)
            if row is None:
                return None, None
            first = self._decoded(key, row)
            assert first is not None  # noqa: S101 - a row decodes to a record
            second_key = then(first)
            if second_key is None:
                return first, None
            second = self._row(conn, cache, second_key)
        return first, self._decoded(second_key, second)

    def _decoded(self, key: str, row: tuple[Any, ...] | None) -> SessionRecord | None:
        """Return the record ``row`` holds (decoded once per cached row, per thread)."""
        if row is None:
            return None
        decoded: DecodedRecords = self._local.decoded
        return decoded.record(key, row, lambda _, found: _record(found))

    def _fresh_cache(self, conn: sqlite3.Connection) -> dict[str, tuple[Any, ...] | None]:
        """Return this connection's read cache, emptied if any connection committed since."""
        cache: dict[str, tuple[Any, ...] | None] = self._local.cache
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._local.version:
            cache.clear()
            self._local.decoded.forget(None)  # decoded from rows no longer cached
            self._local.version = version
        return cache

    def _row(
        self, conn: sqlite3.Connection, cache: dict[str, tuple[Any, ...] | None], key: str
    ) -> tuple[Any, ...] | None:
        if key in cache:
            return cache[key]
        row: tuple[Any, ...] | None = conn.execute(_SELECT + "WHERE key = ?", (key,)).fetchone()
        if len(cache) >= _CACHE_ENTRIES:
            oldest = next(iter(cache))
            del cache[oldest]
            decoded: DecodedRecords = self._local.decoded
            decoded.forget(oldest)
        cache[key] = row
        return row

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        check_save_arguments(changed, expect)
        check_record(record)
        if changed is None:
            with self._writing() as conn:
                conn.execute("INSERT OR REPLACE" + _INTO, _row(record, record.data))
            self._purge_now_and_then()
            return True
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT data, meta FROM coatcheck_sessions WHERE key = ?", (record.key,)
            ).fetchone()
            if row is None:
                return False
            stored = json.loads(row[0])
            if expect is not None and stored.get(expect[0]) != expect[1]:
                return False
            data = merge(stored, record.data, changed)
            meta = merge(json.loads(row[1]), record.meta, changed_meta)
            conn.execute(
                "UPDATE coatcheck_sessions SET handle = ?, user_id = ?, kind = ?, created_at = ?, "
                "last_seen_at = ?, expires_at = ?, meta = ?, data = ? WHERE key = ?",
                (*_row(record, data, meta)[1:], record.key),
            )
        return True

    def add(self, record: SessionRecord) -> bool:
        check_record(record)
        # One statement, so atomic across connections and processes: insert,
        # or take the place of a record that has expired, or do nothing.
        with self._writing() as conn:
            cursor = conn.execute(
                "INSERT" + _INTO + "ON CONFLICT (key) DO UPDATE SET "
                "handle = excluded.handle, user_id = excluded.user_id, kind = excluded.kind, "
                "created_at = excluded.created_at, last_seen_at = excluded.last_seen_at, "
                "expires_at = excluded.expires_at, meta = excluded.meta, data = excluded.data "
                "WHERE coatcheck_sessions.expires_at <= ?",
                (*_row(record, record.data), self.clock()),
            )
        self._purge_now_and_then()
        return cursor.rowcount == 1

    def count(self, kind: RecordKind) -> int:
        with self._db() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM coatcheck_sessions WHERE kind = ? AND expires_at > ?",
                (kind.value, self.clock()),
            ).fetchone()
        found: int = row[0]
        return found

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        with self._writing() as conn:
            conn.execute(
                "UPDATE coatcheck_sessions SET last_seen_at = ?, expires_at = ? WHERE key = ?",
                (last_seen_at, expires_at, key),
            )

    def delete(self, key: str) -> None:
        with self._writing() as conn:
            conn.execute("DELETE FROM coatcheck_sessions WHERE key = ?", (key,))

    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        with self._db() as conn:
            rows = conn.execute(
                _SELECT + "WHERE user_id = ? AND expires_at > ? ORDER BY created_at",
                (user_id, self.clock()),
            ).fetchall()
        return [_record(row) for row in rows]

    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        with self._db() as conn:
            rows = conn.execute(
                _SELECT + "WHERE expires_at > ? ORDER BY last_seen_at DESC LIMIT ?",
                (self.clock(), limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        with self._writing() as conn:
            cursor = conn.execute(
                "DELETE FROM coatcheck_sessions WHERE user_id = ? AND key IS NOT ?",
                (user_id, keep),
            )
        return cursor.rowcount

    def purge_expired(self) -> int:
        with self._writing() as conn:
            cursor = conn.execute(
                "DELETE FROM coatcheck_sessions WHERE expires_at <= ?", (self.clock(),)
            )
        return cursor.rowcount

    def _purge_now_and_then(self) -> None:
        now = self.clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            self.purge_expired()

    def ping(self) -> None:
        with self._db() as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _prepare_schema(conn: sqlite3.Connection) -> None:
    """Create the table and indexes, or bring a file of an older version up to date."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    # Under the write lock, so that two processes opening one old file at
    # once do not both add the column.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_TABLE)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(coatcheck_sessions)")}
        if "kind" not in columns:
            _add_kind_column(conn)
        for statement in _INDEXES:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _add_kind_column(conn: sqlite3.Connection) -> None:
    """Add ``kind`` to a version 1 table, taking each row's kind from its meta."""
    conn.execute("ALTER TABLE coatcheck_sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'session'")
    for meta_kind, kind in LEGACY_KINDS.items():
        conn.execute(
            "UPDATE coatcheck_sessions SET kind = ? WHERE json_extract(meta, '$.kind') = ?",
            (kind.value, meta_kind),
        )


def _row(
    record: SessionRecord, data: dict[str, str], meta: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    return (
        record.key,
        record.handle,
        record.user_id,
        record.kind.value,
        record.created_at,
        record.last_seen_at,
        record.expires_at,
        json.dumps(record.meta if meta is None else meta, separators=(",", ":")),
        json.dumps(data, separators=(",", ":")),
    )


def _record(row: tuple[Any, ...]) -> SessionRecord:
    key, handle, user_id, kind, created_at, last_seen_at, expires_at, meta, data = row
    return SessionRecord(
        key=key,
        handle=handle,
        user_id=user_id,
        kind=RecordKind(kind),
        created_at=created_at,
        last_seen_at=last_seen_at,
        expires_at=expires_at,
        meta=json.loads(meta),
        data=json.loads(data),
    )
