"""How coatcheck opens SQLite files: several processes may open a new file at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from coatcheck.core.sqlite import prepare

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
