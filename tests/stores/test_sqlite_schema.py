"""The SQLite store's schema: files of version 1 are upgraded in place."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from coatcheck.core.clock import ManualClock
from coatcheck.core.records import RecordKind
from coatcheck.stores.sqlite import SCHEMA_VERSION, SQLiteSessionStore

# The schema as version 1 created it, word for word.
VERSION_1 = """
CREATE TABLE IF NOT EXISTS coatcheck_sessions (
    key TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    user_id TEXT,
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    meta TEXT NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coatcheck_sessions_user
    ON coatcheck_sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS coatcheck_sessions_expiry ON coatcheck_sessions (expires_at);
PRAGMA user_version = 1;
"""
# meta "kind" as version 1 wrote it -> the kind the row has after the upgrade.
OLD_ROWS = {
    "remember": RecordKind.REMEMBER,
    "token": RecordKind.TOKEN_FAMILY,
    "refresh": RecordKind.SESSION,
    "session": RecordKind.SESSION,
    None: RecordKind.SESSION,
    7: RecordKind.SESSION,
}


def make_version_1_file(path: Path, now: float) -> dict[str, RecordKind]:
    """Write a version 1 file holding one row per entry of OLD_ROWS; return key -> kind."""
    expected = {}
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1)
        for n, (meta_kind, kind) in enumerate(OLD_ROWS.items()):
            meta = {"ip": "127.0.0.1"} if meta_kind is None else {"kind": meta_kind}
            key = f"{n:064x}"
            conn.execute(
                "INSERT INTO coatcheck_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, f"{n:032x}", "alice", now, now, now + 600, json.dumps(meta), '{"a":"1"}'),
            )
            expected[key] = kind
    conn.close()
    return expected


def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "old.db"
    expected = make_version_1_file(path, clock())
    store = SQLiteSessionStore(path, clock=clock)
    for key, kind in expected.items():
        record = store.get(key)
        assert record is not None and record.kind is kind, key
        assert record.data == {"a": "1"} and record.user_id == "alice"
    assert store.count(RecordKind.SESSION) == 4
    assert store.count(RecordKind.REMEMBER) == store.count(RecordKind.TOKEN_FAMILY) == 1
    assert len(store.list_by_user("alice")) == len(OLD_ROWS)
    conn = store._connect()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    store.close()
    # Opening it again changes nothing.
    again = SQLiteSessionStore(path, clock=clock)
    assert {key: again.get(key).kind for key in expected} == expected  # type: ignore[union-attr]
    again.close()


def test_count_reads_the_kind_index_alone(tmp_path: Path, clock: ManualClock) -> None:
    for path in (tmp_path / "new.db", tmp_path / "old.db"):
        if path.name == "old.db":
            make_version_1_file(path, clock())
        store = SQLiteSessionStore(path, clock=clock)
        store.count(RecordKind.SESSION)
        statements: list[str] = []
        conn = store._connect()
        plan = conn.execute(
            "EXPLAIN QUERY PLAN "
            "SELECT COUNT(*) FROM coatcheck_sessions WHERE kind = ? AND expires_at > ?",
            ("session", clock()),
        ).fetchall()
        assert "USING COVERING INDEX coatcheck_sessions_kind" in plan[0][-1]
        conn.set_trace_callback(statements.append)
        store.count(RecordKind.STAMP)
        assert len(statements) == 1 and statements[0].startswith("SELECT COUNT(*)")
        store.close()


def test_processes_opening_an_old_file_at_once_upgrade_it_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "old.db"
    expected = make_version_1_file(path, clock())
    stores = [SQLiteSessionStore(path, clock=clock) for _ in range(6)]
    failures: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def open_one(store: SQLiteSessionStore) -> None:
        start.wait()
        try:
            store.ping()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert {key: stores[0].get(key).kind for key in expected} == expected  # type: ignore[union-attr]
    for store in stores:
        store.close()
