"""The SQLite store's read cache: a hit runs no query, a change elsewhere is never missed."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, SessionRecord
from coatcheck.stores.sqlite import SQLiteSessionStore


def new_record(clock: ManualClock) -> SessionRecord:
    return LifetimePolicy().new_record(store_key(new_session_id()), clock(), user_id="7")


def test_a_cached_read_runs_no_select(tmp_path: Path, clock: ManualClock) -> None:
    store = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    record = new_record(clock)
    store.save(record)
    store.get(record.key)
    statements: list[str] = []
    store._connect().set_trace_callback(statements.append)
    for _ in range(10):
        assert store.get(record.key) == record
    assert statements == ["PRAGMA data_version"] * 10
    store.close()


def test_a_change_by_another_connection_is_seen(tmp_path: Path, clock: ManualClock) -> None:
    a = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    b = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    record = new_record(clock)
    a.save(record)
    assert a.get(record.key) is not None
    changed = b.get(record.key)
    assert changed is not None
    changed.meta["roles"] = ["demoted"]
    b.save(changed, set(), changed_meta={"roles"})
    loaded = a.get(record.key)
    assert loaded is not None and loaded.meta["roles"] == ["demoted"]
    b.delete(record.key)
    assert a.get(record.key) is None
    missing = new_record(clock)
    assert a.get(missing.key) is None  # a miss is cached too ...
    b.save(missing)
    assert a.get(missing.key) is not None  # ... and dropped when another writes
    a.close()
    b.close()


def _revoke(path: str, key: str) -> None:
    SQLiteSessionStore(path).delete(key)


def test_a_change_by_another_process_is_seen(tmp_path: Path, clock: ManualClock) -> None:
    store = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    record = new_record(clock)
    store.save(record)
    assert store.get(record.key) is not None
    worker = multiprocessing.get_context("spawn").Process(
        target=_revoke, args=(str(tmp_path / "s.db"), record.key)
    )
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == 0
    assert store.get(record.key) is None
    store.close()


def test_decoded_records_go_with_the_rows_they_came_from(
    tmp_path: Path, clock: ManualClock
) -> None:
    # Kept past their row, decoded records grew each thread's memory to
    # 10,000 records under logins and logouts (make load: +0.2 MiB/s a worker).
    a = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    b = SQLiteSessionStore(tmp_path / "s.db", clock=clock)
    records = [new_record(clock) for _ in range(20)]
    for record in records:
        b.save(record)
    for record in records:
        assert a.get(record.key) == record
    assert len(a._local.decoded._kept) == 20
    b.delete(records[0].key)  # a commit elsewhere: every cached row is read again
    assert a.get(records[1].key) == records[1]
    assert set(a._local.decoded._kept) == {records[1].key}
    a.close()
    b.close()
