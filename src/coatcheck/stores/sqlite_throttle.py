"""``coatcheck+sqlite:///path``: throttle counters for the limits library in SQLite.

The embedded default keeps the login throttle's counters in one SQLite file
beside the session store's (``<dir>/throttle.db``), so that every worker
process shares them and a restart keeps them. ``coatcheck+sqlite:///:memory:``
keeps them in this process only (``memory://`` session stores and tests).

The storage implements limits' :class:`~limits.storage.Storage` (the fixed
window counters) and :class:`~limits.storage.MovingWindowSupport` (the
strategy the throttle uses). Every read-modify-write runs under
``BEGIN IMMEDIATE``, which takes the file's write lock before reading: two
processes cannot both see a free slot and both take it. Within a process one
connection is shared under a lock; a forked child opens its own. Time comes
from an injected clock, so tests move windows without sleeping.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from limits.storage import MovingWindowSupport, Storage

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError
from ..core.sqlite import BUSY_TIMEOUT_S, create_private, prepare

SCHEME = "coatcheck+sqlite"
MEMORY = ":memory:"
#: Expired rows are deleted at most this often (seconds of the clock).
PURGE_INTERVAL = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS throttle_entries (
    key TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS throttle_entries_key ON throttle_entries (key, at);
CREATE INDEX IF NOT EXISTS throttle_entries_expiry ON throttle_entries (expires_at);
CREATE TABLE IF NOT EXISTS throttle_counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


def path_from_url(uri: str) -> str:
    """Return the file path a ``coatcheck+sqlite:///path`` URL names.

    Like SQLAlchemy's: three slashes before a relative path, four before an
    absolute one; ``:memory:`` for counters in this process only.
    """
    prefix = f"{SCHEME}:///"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise ConfigurationError(
            f"a throttle storage URL is {SCHEME}:///relative/path, "
            f"{SCHEME}:////absolute/path or {SCHEME}:///{MEMORY}"
        )
    return uri[len(prefix) :]


class SQLiteThrottleStorage(Storage, MovingWindowSupport):
    """Keep rate limit counters and moving windows in a SQLite file."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        clock: Clock = system_clock,
        **options: float | str | bool,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = path_from_url(uri or f"{SCHEME}:///{MEMORY}")
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._next_purge = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self.path == MEMORY:
            conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
        else:
            path = Path(self.path)
            create_private(path)  # hashed account names and client addresses: private
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            prepare(conn)
        conn.executescript(_SCHEMA)
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if self._pid != os.getpid():
            # A forked child: the parent's connection and lock are not ours to use.
            self._conn, self._lock, self._pid = None, threading.Lock(), os.getpid()
        with self._lock:
            yield self._connect()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        """Yield the connection inside ``BEGIN IMMEDIATE``, and the time it began."""
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock()
                if now >= self._next_purge:
                    conn.execute("DELETE FROM throttle_entries WHERE expires_at < ?", (now,))
                    conn.execute("DELETE FROM throttle_counters WHERE expires_at <= ?", (now,))
                    self._next_purge = now + PURGE_INTERVAL
                yield conn, now
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, *args: Any) -> tuple[Any, ...]:
        with self._db() as conn:
            row: tuple[Any, ...] = conn.execute(sql, args).fetchone()
        return row

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take ``amount`` slots of the moving window at ``key`` if that many are free.

        :param key: the rate limit key.
        :param limit: the slots in one window.
        :param expiry: the window's length in seconds.
        :param amount: the slots to take.
        """
        if amount > limit:
            return False
        with self._transaction() as (conn, now):
            (taken,) = conn.execute(
                "SELECT count(*) FROM throttle_entries WHERE key = ? AND at >= ?",
                (key, now - expiry),
            ).fetchone()
            if taken + amount > limit:
                return False
            conn.executemany(
                "INSERT INTO throttle_entries (key, at, expires_at) VALUES (?, ?, ?)",
                [(key, now, now + expiry)] * amount,
            )
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return the start of the moving window at ``key`` and the slots taken in it.

        The start is the oldest entry still in the window (the window frees a
        slot ``expiry`` seconds after it), or now when the window is empty.
        """
        now = self.clock()
        oldest, taken = self._query(
            "SELECT min(at), count(*) FROM (SELECT at FROM throttle_entries "
            "WHERE key = ? AND at >= ? ORDER BY at DESC LIMIT ?)",
            key,
            now - expiry,
            limit,
        )
        return (float(oldest), int(taken)) if taken else (now, 0)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the fixed-window counter at ``key``; return its value."""
        with self._transaction() as (conn, now):
            conn.execute(
                "DELETE FROM throttle_counters WHERE key = ? AND expires_at <= ?", (key, now)
            )
            conn.execute(
                "INSERT INTO throttle_counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (key, amount, now + expiry),
            )
            (value,) = conn.execute(
                "SELECT value FROM throttle_counters WHERE key = ?", (key,)
            ).fetchone()
        return int(value)

    def get(self, key: str) -> int:
        """Return the fixed-window counter at ``key`` (0 once expired)."""
        row = self._query(
            "SELECT coalesce(max(value), 0) FROM throttle_counters "
            "WHERE key = ? AND expires_at > ?",
            key,
            self.clock(),
        )
        return int(row[0])

    def get_expiry(self, key: str) -> float:
        """Return when the fixed-window counter at ``key`` expires (now if absent)."""
        now = self.clock()
        row = self._query(
            "SELECT max(expires_at) FROM throttle_counters WHERE key = ? AND expires_at > ?",
            key,
            now,
        )
        return float(row[0]) if row[0] is not None else now

    def clear(self, key: str) -> None:
        """Forget every entry and counter at ``key``."""
        with self._transaction() as (conn, _):
            conn.execute("DELETE FROM throttle_entries WHERE key = ?", (key,))
            conn.execute("DELETE FROM throttle_counters WHERE key = ?", (key,))

    def reset(self) -> int | None:
        """Forget everything; return how many keys there were."""
        with self._transaction() as (conn, _):
            (keys,) = conn.execute(
                "SELECT count(*) FROM (SELECT key FROM throttle_entries "
                "UNION SELECT key FROM throttle_counters)"
            ).fetchone()
            conn.execute("DELETE FROM throttle_entries")
            conn.execute("DELETE FROM throttle_counters")
        return int(keys)

    def check(self) -> bool:
        """Return whether the file can be read."""
        try:
            self._query("SELECT 1")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        """Close this process's connection; the next use opens a new one."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
