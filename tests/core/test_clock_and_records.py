"""The clocks, and the session record a lifetime policy makes."""

from __future__ import annotations

import time

from coatcheck.core.clock import ManualClock, system_clock
from coatcheck.core.ids import is_handle
from coatcheck.core.records import LifetimePolicy, RecordKind


def test_the_system_clock_is_unix_time() -> None:
    before = time.time()
    now = system_clock()
    assert before <= now <= time.time()


def test_a_manual_clock_starts_now_unless_told() -> None:
    before = time.time()
    clock = ManualClock()
    assert before <= clock() <= time.time()
    assert ManualClock(0).now == 0 and ManualClock(0)() == 0
    assert ManualClock(12.5)() == 12.5


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(100)
    assert clock() == clock() == 100
    clock.advance(10)
    clock.advance(0.5)
    assert clock() == 110.5
    clock.advance(-0.5)
    assert clock() == 110


def test_a_new_record_starts_at_now_with_its_fields() -> None:
    policy = LifetimePolicy(idle_timeout=100, absolute_timeout=1000, touch_interval=10)
    record = policy.new_record(
        "key", 50.0, user_id="7", data={"a": "1"}, meta={"m": 1}, kind=RecordKind.REMEMBER
    )
    assert (record.key, record.created_at, record.last_seen_at) == ("key", 50.0, 50.0)
    assert record.expires_at == 150.0
    assert (record.user_id, record.data, record.meta) == ("7", {"a": "1"}, {"m": 1})
    assert record.kind is RecordKind.REMEMBER
    assert is_handle(record.handle)
    assert policy.new_record("key", 0).handle != record.handle


def test_a_new_record_defaults() -> None:
    record = LifetimePolicy().new_record("key", 0.0)
    assert record.user_id is None and record.data == {} and record.meta == {}
    assert record.kind is RecordKind.SESSION
    assert record.expires_at == 30 * 60


def test_the_default_policy() -> None:
    policy = LifetimePolicy()
    assert (policy.idle_timeout, policy.absolute_timeout, policy.touch_interval) == (
        1800,
        43200,
        60,
    )


def test_an_absolute_timeout_shorter_than_idle_wins_from_the_start() -> None:
    policy = LifetimePolicy(idle_timeout=1000, absolute_timeout=100)
    record = policy.new_record("key", 10.0)
    assert record.expires_at == 110.0
    assert policy.is_expired(record, 110.0) and not policy.is_expired(record, 109.0)
