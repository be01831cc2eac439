"""Throttle counters shared by processes and threads, kept across restarts; the SQLite storage."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

import coatcheck
from coatcheck.auth.throttle import LoginThrottle, Refusal
from coatcheck.core.clock import ManualClock
from coatcheck.core.settings import Settings
from coatcheck.stores.sqlite_throttle import PURGE_INTERVAL, SQLiteThrottleStorage

WORKER = """
import json, sys, time
from coatcheck.auth.throttle import LoginThrottle
from coatcheck.core.settings import Settings

throttle = LoginThrottle.from_settings(Settings(store_url=sys.argv[1]))
throttle.storage.check()  # open the file before the start
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together, to race
allowed = {}
for account in range(ACCOUNTS):
    name, address = f"user{account}", f"203.0.113.{account}"
    allowed[name] = 0
    for _ in range(8):
        if throttle.reserve(name, address) is None:
            throttle.failed(name, address)
            allowed[name] += 1
throttle.close()
print(json.dumps(allowed))
"""
ACCOUNTS = 40


def test_two_worker_processes_allow_five_failures_together_and_a_restart_keeps_them(
    tmp_path: Path,
) -> None:
    store_url = f"sqlite:///{tmp_path / 'sessions.db'}"
    src = str(Path(coatcheck.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    start_at = str(time.time() + 1.5)
    code = WORKER.replace("ACCOUNTS", str(ACCOUNTS))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url, start_at],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    first, second = (json.loads(output) for output in outputs)
    assert {name: first[name] + second[name] for name in first} == {
        f"user{i}": 5 for i in range(ACCOUNTS)
    }
    # A restart: a new throttle on the same file still refuses.
    restarted = LoginThrottle.from_settings(Settings(store_url=store_url))
    refused = restarted.reserve("user0", "203.0.113.0")
    # The workers' refusals were audited: the first mark is in the file too.
    assert refused is not None and refused.scope == "pair" and not refused.first
    assert restarted.reserve("user0", "198.51.100.7") is None
    restarted.close()


def test_counters_outlive_the_throttle_object(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'sessions.db'}")
    for _ in range(5):
        throttle = LoginThrottle.from_settings(settings, clock=clock)
        assert throttle.reserve("alice", "203.0.113.9") is None
        throttle.failed("alice", "203.0.113.9")
        throttle.close()
    throttle = LoginThrottle.from_settings(settings, clock=clock)
    assert throttle.reserve("alice", "203.0.113.9") == Refusal(900, "pair", True)
    throttle.close()
    # first is kept too: the next process does not audit the same lock again.
    throttle = LoginThrottle.from_settings(settings, clock=clock)
    assert throttle.reserve("alice", "203.0.113.9") == Refusal(900, "pair", False)
    throttle.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_parallel_reservations_cannot_exceed_the_pair_limit(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store_url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'sessions.db'}",
    }.get(kind) or request.getfixturevalue("redis_url")
    # Each thread its own throttle (its own connection), as workers would be.
    shared = LoginThrottle.from_settings(Settings(store_url=store_url))
    throttles = [
        shared if kind == "memory" else LoginThrottle.from_settings(Settings(store_url=store_url))
        for _ in range(16)
    ]
    barrier = threading.Barrier(len(throttles))
    results: list[tuple[int, Refusal | None]] = []
    errors: list[BaseException] = []

    def guess(throttle: LoginThrottle) -> None:
        barrier.wait()
        try:
            for account in range(10):
                for _ in range(2):
                    refusal = throttle.reserve(f"user{account}", f"203.0.113.{account}")
                    results.append((account, refusal))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(t,)) for t in throttles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    for account in range(10):
        mine = [refusal for key, refusal in results if key == account]
        assert len(mine) == 32
        assert mine.count(None) == 5
        assert [r.first for r in mine if r is not None].count(True) == 1
    for throttle in {*throttles, shared}:
        throttle.close()


@pytest.fixture
def storage(tmp_path: Path, clock: ManualClock) -> SQLiteThrottleStorage:
    return SQLiteThrottleStorage(f"coatcheck+sqlite:///{tmp_path}/throttle.db", clock=clock)


def test_the_storage_is_registered_with_limits(tmp_path: Path) -> None:
    storage = storage_from_string(f"coatcheck+sqlite:///{tmp_path}/t.db")
    assert isinstance(storage, SQLiteThrottleStorage)
    assert storage.check()
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    storage.close()


def test_the_moving_window_follows_the_clock(
    storage: SQLiteThrottleStorage, clock: ManualClock
) -> None:
    limiter, rate = MovingWindowRateLimiter(storage), parse("3/minute")
    start = clock()
    assert storage.get_moving_window(rate.key_for("k"), 3, 60) == (start, 0)
    assert limiter.hit(rate, "k", cost=2)
    clock.advance(30)
    assert limiter.hit(rate, "k")
    assert not limiter.hit(rate, "k")
    assert not limiter.hit(rate, "k", cost=4)
    assert storage.get_moving_window(rate.key_for("k"), 3, 60) == (start, 3)
    assert limiter.get_window_stats(rate, "k") == (start + 60, 0)
    clock.advance(31)  # the first two leave the window
    assert limiter.hit(rate, "k", cost=2)
    assert not limiter.hit(rate, "k")
    limiter.clear(rate, "k")
    assert limiter.test(rate, "k", cost=3)


def test_expired_rows_are_purged(storage: SQLiteThrottleStorage, clock: ManualClock) -> None:
    limiter, rate = MovingWindowRateLimiter(storage), parse("5/minute")
    for i in range(20):
        limiter.hit(rate, f"k{i}")
    clock.advance(max(61.0, PURGE_INTERVAL))
    limiter.hit(rate, "fresh")
    with sqlite3.connect(storage.path) as conn:
        assert conn.execute("SELECT count(*) FROM throttle_entries").fetchone() == (1,)
    storage.close()


def test_fixed_window_counters(storage: SQLiteThrottleStorage, clock: ManualClock) -> None:
    limiter, rate = FixedWindowRateLimiter(storage), parse("2/minute")
    key = rate.key_for("k")
    assert storage.get(key) == 0 and storage.get_expiry(key) == clock()
    assert limiter.hit(rate, "k") and limiter.hit(rate, "k")
    assert not limiter.hit(rate, "k")
    assert storage.get(key) == 3 and storage.get_expiry(key) == clock() + 60
    clock.advance(60)
    assert storage.get(key) == 0
    assert limiter.hit(rate, "k")
    MovingWindowRateLimiter(storage).hit(rate, "m")
    assert storage.reset() == 2
    assert storage.get(key) == 0
    storage.close()
