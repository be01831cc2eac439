"""The Redis store's read cache: no round trip on a hit, never a stale read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, SessionRecord
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
