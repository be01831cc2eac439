"""The Redis store's read cache under a frozen Redis: it fails closed too.

A frozen server (SIGSTOP, a hang, a partition behind something that keeps
the connection open) sends no invalidation and closes nothing, so the
invalidation connection alone cannot tell it from a quiet one. Before the fix
in ``redis_cache.py`` a cached session was served for as long as the freeze
lasted; now a hit needs an answer from Redis less than ``LIVENESS_SECONDS`` old.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from coatcheck.core.errors import StoreUnavailable
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, SessionRecord
from coatcheck.stores.redis import RedisSessionStore
from coatcheck.stores.redis_cache import LIVENESS_SECONDS

from .conftest import DurableRedis


@pytest.fixture
def store(durable_redis: DurableRedis) -> Iterator[RedisSessionStore]:
    # A short socket timeout: each timed-out call costs 0.25 s, not 2 s.
    opened = RedisSessionStore.from_url(f"{durable_redis.url}?socket_timeout=0.25")
    yield opened
    opened.close()


def cached_record(store: RedisSessionStore) -> SessionRecord:
    record = LifetimePolicy().new_record(store_key(new_session_id()), time.time(), user_id="7")
    store.save(record)
    assert store.get(record.key) == record
    assert store.cache is not None
    assert store._session_key(record.key) in store.cache._entries
    return record


def test_a_cached_session_is_not_served_while_redis_is_frozen(
    durable_redis: DurableRedis, store: RedisSessionStore
) -> None:
    record = cached_record(store)
    durable_redis.pause()
    try:
        time.sleep(LIVENESS_SECONDS)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get(record.key)
        assert time.monotonic() - started < 5  # timeouts, not a hang
        with pytest.raises(StoreUnavailable):  # and again: the cache was dropped
            store.get(record.key)
    finally:
        durable_redis.resume()
    assert store.get(record.key) == record


def test_a_revocation_made_before_the_freeze_holds_during_and_after(
    durable_redis: DurableRedis, store: RedisSessionStore
) -> None:
    record = cached_record(store)
    other = RedisSessionStore.from_url(durable_redis.url)  # another instance revokes it
    other.delete(record.key)
    other.close()
    durable_redis.pause()
    try:
        time.sleep(LIVENESS_SECONDS)
        with pytest.raises(StoreUnavailable):
            store.get(record.key)
    finally:
        durable_redis.resume()
    assert store.get(record.key) is None


def test_hits_in_a_live_cache_cost_a_ping_per_liveness_period_at_most(
    durable_redis: DurableRedis, store: RedisSessionStore
) -> None:
    record = cached_record(store)
    server = redis.Redis.from_url(durable_redis.url)

    def calls(command: str) -> int:
        stats = server.info("commandstats").get(f"cmdstat_{command}", {})
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    reads, pings = calls("hgetall"), calls("ping")
    started = time.monotonic()
    while time.monotonic() - started < 4 * LIVENESS_SECONDS:
        assert store.get(record.key) == record
    assert calls("hgetall") == reads
    assert 1 <= calls("ping") - pings <= 5
    server.close()
