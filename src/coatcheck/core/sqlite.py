"""How coatcheck opens every SQLite file: the session store, the throttle and the user store."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time

#: Seconds a connection waits for another process's lock before it fails.
BUSY_TIMEOUT_S = 10.0


def create_private(path: str | os.PathLike[str]) -> None:
    """Create the database file ``path`` readable by this user alone, if it does not exist.

    SQLite gives its ``-wal`` and ``-shm`` files the database's mode. An
    existing file is never opened here: closing any descriptor of a file
    drops every POSIX lock this process holds on it, so opening and closing
    the database beside SQLite, while another thread's connection holds a
    lock, let other processes write under it ("disk I/O error", with threads).
    What cannot be created is left for SQLite to report.
    """
    folder = os.path.dirname(os.path.abspath(path))
    with contextlib.suppress(OSError):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def prepare(conn: sqlite3.Connection) -> None:
    """Set a new connection to wait for locks, write ahead and sync normally."""
    conn.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT_S * 1000)}")
    _write_ahead(conn)
    conn.execute("PRAGMA synchronous = NORMAL")


def _write_ahead(conn: sqlite3.Connection) -> None:
    # Turning a new file to WAL takes a lock that SQLite does not wait for:
    # of several processes that open the file at once, one switches it and
    # the others may get "database is locked" at once (up to 1 in 10 with four
    # processes). Try again until the busy timeout, as for any other lock.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
