"""How coatcheck opens SQLite files: several processes may open a new file at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coatcheck.core.sqlite import create_private, prepare
from coatcheck.stores.sqlite import SQLiteSessionStore
from coatcheck.stores.sqlite_throttle import SQLiteThrottleStorage
from coatcheck.users.store import UserStore

PROCESSES = 4
ROUNDS = 40


def _open(path: str, barrier: Any, results: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        barrier.wait(timeout=30)
        prepare(conn)
        # As each store does next: take the write lock and make its tables.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("COMMIT")
        results.put(conn.execute("PRAGMA journal_mode").fetchone()[0])
    except BaseException as exc:  # the parent asserts on it
        results.put(repr(exc))
    finally:
        conn.close()


def test_processes_opening_a_new_file_together_all_get_write_ahead(tmp_path: Path) -> None:
    # Without waiting, one opener in 10 to 60 got "database is locked" at once.
    context = multiprocessing.get_context("fork")
    outcomes = []
    for round_ in range(ROUNDS):
        path = tmp_path / f"new{round_}.db"
        path.touch()
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        openers = [
            context.Process(target=_open, args=(str(path), barrier, results))
            for _ in range(PROCESSES)
        ]
        for opener in openers:
            opener.start()
        outcomes += [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=30)
    assert outcomes == ["wal"] * PROCESSES * ROUNDS


def test_a_connection_is_set_to_wait_and_sync_normally(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "one.db")
    prepare(conn)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


_CLOSE_IN_ANOTHER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
conn.close()  # the last connection to close deletes the -wal file
"""


@pytest.mark.parametrize("opener", ["sessions", "throttle", "users"])
def test_a_new_connection_keeps_the_locks_of_this_process(tmp_path: Path, opener: str) -> None:
    # Closing any descriptor of a file drops every POSIX lock the process holds
    # on it. Opening the database beside SQLite (to set its mode) while another
    # thread was connected let a second process think it was the last one and
    # delete the write-ahead log under the first: "disk I/O error" under load.
    path = tmp_path / "shared.db"
    create_private(path)
    holder = sqlite3.connect(path, isolation_level=None)
    prepare(holder)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("INSERT INTO t VALUES (1)")
    assert (tmp_path / "shared.db-wal").exists()

    # Another connection of this process's, as a new server thread opens one.
    if opener == "sessions":
        SQLiteSessionStore(path).get("any")
    elif opener == "throttle":
        assert SQLiteThrottleStorage(f"coatcheck+sqlite:///{path}").check()
    else:
        UserStore(f"sqlite:///{path}").ping()

    subprocess.run([sys.executable, "-c", _CLOSE_IN_ANOTHER_PROCESS, str(path)], check=True)
    assert (tmp_path / "shared.db-wal").exists(), "another process took itself for the last"
    assert holder.execute("SELECT x FROM t").fetchall() == [(1,)]
    holder.close()


def test_the_file_is_created_for_this_user_alone(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "new.db"
    create_private(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    path.chmod(0o640)
    create_private(path)  # an existing file is left as it is
    assert path.stat().st_mode & 0o777 == 0o640
