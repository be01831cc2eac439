"""The Redis store's read cache: no round trip on a hit or a miss, never a stale read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, RecordKind, SessionRecord
from coatcheck.stores import redis_cache
from coatcheck.stores.redis import RedisSessionStore

from ..conftest import PrivateRedis


@pytest.fixture
def server(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url, decode_responses=True)
    yield client
    client.close()


def open_two(url: str, clock: ManualClock) -> tuple[RedisSessionStore, RedisSessionStore]:
    """Two stores on one Redis, as two instances of an application would have."""
    return (
        RedisSessionStore.from_url(url, clock=clock),
        RedisSessionStore.from_url(url, clock=clock),
    )


def new_record(clock: ManualClock) -> SessionRecord:
    return LifetimePolicy().new_record(store_key(new_session_id()), clock(), user_id="7")


def stamp_record(clock: ManualClock, user_id: str) -> SessionRecord:
    return LifetimePolicy().new_record(
        RecordKind.STAMP.key(user_id), clock(), kind=RecordKind.STAMP
    )


def hgetall_calls(server: redis.Redis) -> int:
    stats = server.info("commandstats").get("cmdstat_hgetall", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def test_a_cached_read_costs_no_round_trip(
    private_redis: PrivateRedis, server: redis.Redis, clock: ManualClock
) -> None:
    a, _ = open_two(private_redis.url, clock)
    record = new_record(clock)
    a.save(record)
    a.get(record.key)
    before = hgetall_calls(server)
    for _ in range(100):
        assert a.get(record.key) == record
    assert hgetall_calls(server) == before
    a.close()


def test_a_change_by_another_instance_is_seen_at_the_next_read(
    private_redis: PrivateRedis, clock: ManualClock
) -> None:
    a, b = open_two(private_redis.url, clock)
    record = new_record(clock)
    a.save(record)
    assert a.get(record.key) is not None  # cached in A
    changed = b.get(record.key)
    assert changed is not None
    changed.meta["roles"] = ["demoted"]
    b.save(changed, set(), changed_meta={"roles"})
    loaded = a.get(record.key)
    assert loaded is not None and loaded.meta["roles"] == ["demoted"]
    b.delete(record.key)  # a revocation on the other instance
    assert a.get(record.key) is None
    a.close()
    b.close()


def test_expiry_and_flush_evict(
    private_redis: PrivateRedis, server: redis.Redis, clock: ManualClock
) -> None:
    a, _ = open_two(private_redis.url, clock)
    record = new_record(clock)
    a.save(record)
    assert a.get(record.key) is not None
    server.flushdb()
    assert a.get(record.key) is None
    a.close()


def test_a_lost_invalidation_connection_drops_the_cache(
    private_redis: PrivateRedis, server: redis.Redis, clock: ManualClock
) -> None:
    a, b = open_two(private_redis.url, clock)
    record = new_record(clock)
    a.save(record)
    assert a.get(record.key) is not None
    server.client_kill_filter(_type="pubsub")  # the invalidation connection dies
    b.delete(record.key)  # ... and a change happens that it will never report
    assert a.get(record.key) is None
    a.save(record)
    assert a.get(record.key) is not None  # caching resumes with a new subscription
    a.close()
    b.close()


def test_the_cache_can_be_turned_off(private_redis: PrivateRedis, clock: ManualClock) -> None:
    store = RedisSessionStore.from_url(f"{private_redis.url}?client_cache=off", clock=clock)
    assert store.cache is None
    store.close()


def test_a_miss_is_cached_and_costs_no_round_trip(
    private_redis: PrivateRedis, server: redis.Redis, clock: ManualClock
) -> None:
    a, _ = open_two(private_redis.url, clock)
    assert a.cache is not None
    stamp = RecordKind.STAMP.key("alice")  # read by every request of alice, usually absent
    assert a.get(stamp) is None
    assert a._session_key(stamp) in a.cache._misses
    before = hgetall_calls(server)
    for _ in range(100):
        assert a.get(stamp) is None
    assert hgetall_calls(server) == before
    a.close()


def test_a_key_created_by_another_client_is_seen_at_the_next_read(
    private_redis: PrivateRedis, server: redis.Redis, clock: ManualClock
) -> None:
    a, b = open_two(private_redis.url, clock)
    stamp = stamp_record(clock, "alice")
    assert a.get(stamp.key) is None  # a cached miss
    assert b.add(stamp) is True  # another instance creates it
    assert a.get(stamp.key) == stamp
    b.delete(stamp.key)
    assert a.get(stamp.key) is None  # a cached miss again
    # Any client at all, not only a store: Redis reports every change under the prefix.
    server.hset(a._session_key(stamp.key), mapping={"h": stamp.handle, "k": "stamp"})
    server.hset(a._session_key(stamp.key), mapping={"c": "1", "l": "1", "e": "2"})
    loaded = a.get(stamp.key)
    assert loaded is not None and loaded.handle == stamp.handle
    a.close()
    b.close()


def test_a_miss_read_while_the_key_is_created_is_not_cached(
    private_redis: PrivateRedis, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = open_two(private_redis.url, clock)
    assert a.cache is not None
    a.get(new_record(clock).key)  # subscribes the cache
    stamp = stamp_record(clock, "alice")
    read = a.client.hgetall

    def read_then_created_elsewhere(name: str) -> Any:
        fields = read(name)
        b.add(stamp)
        # Its invalidation has arrived before the cache decides to keep the miss.
        assert a.cache is not None and a.cache._conn.can_read(timeout=5)
        return fields

    monkeypatch.setattr(a.client, "hgetall", read_then_created_elsewhere)
    assert a.get(stamp.key) is None  # what was read
    monkeypatch.undo()
    assert a.get(stamp.key) == stamp
    a.close()
    b.close()


def test_misses_cannot_push_out_cached_sessions(
    private_redis: PrivateRedis,
    server: redis.Redis,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_cache, "MAX_MISSES", 5)
    a, _ = open_two(private_redis.url, clock)
    assert a.cache is not None
    record = new_record(clock)
    a.save(record)
    a.get(record.key)
    for _ in range(50):  # made-up session cookies
        assert a.get(new_record(clock).key) is None
    assert len(a.cache._misses) == 5
    before = hgetall_calls(server)
    assert a.get(record.key) == record
    assert hgetall_calls(server) == before
    a.close()


def test_decoded_records_go_with_the_entries_they_came_from(
    private_redis: PrivateRedis, clock: ManualClock
) -> None:
    # Kept past their entry, decoded records grew a worker's memory without end
    # under logins and logouts (make load: +0.2 MiB/s).
    a, b = open_two(private_redis.url, clock)
    records = [new_record(clock) for _ in range(20)]
    for record in records:
        a.save(record)
        assert a.get(record.key) == record
    assert len(a._decodes._kept) == 20
    for record in records[:15]:
        b.delete(record.key)  # another instance: Redis tells A
    for record in records[15:]:
        assert a.get(record.key) == record
    assert set(a._decodes._kept) == {r.key for r in records[15:]}
    a.close()
    b.close()
