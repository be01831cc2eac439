"""What only the Redis store does: expiry by TTL."""

from __future__ import annotations

from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy
from coatcheck.stores.redis import RedisSessionStore


def test_records_carry_a_ttl_matching_their_expiry(redis_url: str, clock: ManualClock) -> None:
    store = RedisSessionStore.from_url(redis_url, clock=clock)
    record = LifetimePolicy().new_record(store_key(new_session_id()), clock(), user_id="u")
    store.save(record)
    ttl = store.client.pttl(store._session_key(record.key))
    assert 1_799_000 < ttl <= 1_800_000
    assert store.client.pttl(store._user_key("u")) > 0
    store.touch(record.key, clock(), clock() + 60)
    assert 0 < store.client.pttl(store._session_key(record.key)) <= 60_000
    store.close()


def test_no_key_holds_the_session_id(redis_url: str, clock: ManualClock) -> None:
    store = RedisSessionStore.from_url(redis_url, clock=clock)
    sid = new_session_id()
    record = LifetimePolicy().new_record(store_key(sid), clock(), user_id="u")
    store.save(record)
    for key in store.client.scan_iter(match=f"{store.prefix}*"):
        assert sid not in key
        values = store.client.hgetall(key) if store.client.type(key) == "hash" else {}
        assert all(sid not in v for v in values.values())
    store.close()
