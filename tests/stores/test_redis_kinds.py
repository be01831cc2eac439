"""What the Redis store does for kinds: older hashes, and a count that scans nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from coatcheck.core.clock import ManualClock
from coatcheck.core.records import RecordKind
from coatcheck.stores.redis import RedisSessionStore
from coatcheck.testing import make_record

from ..conftest import PrivateRedis


@pytest.fixture
def store(redis_url: str, clock: ManualClock) -> Iterator[RedisSessionStore]:
    opened = RedisSessionStore.from_url(redis_url, clock=clock)
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("meta_kind", "kind"),
    [
        ('"remember"', RecordKind.REMEMBER),
        ('"token"', RecordKind.TOKEN_FAMILY),
        ('"refresh"', RecordKind.SESSION),
        ('"session"', RecordKind.SESSION),
        ("7", RecordKind.SESSION),
        (None, RecordKind.SESSION),
    ],
)
def test_a_hash_written_before_kinds_takes_its_kind_from_its_meta(
    store: RedisSessionStore, clock: ManualClock, meta_kind: str | None, kind: RecordKind
) -> None:
    record = make_record(clock, user_id="alice", a='"1"')
    fields = {"h": record.handle, "u": "alice", "c": "1.5", "l": "2.5", "e": repr(clock() + 60)}
    fields |= {"d:a": '"1"', "m:ip": '"127.0.0.1"'}
    if meta_kind is not None:
        fields["m:kind"] = meta_kind
    store.client.hset(store._session_key(record.key), mapping=fields)
    loaded = store.get(record.key)
    assert loaded is not None and loaded.kind is kind
    assert loaded.data == {"a": '"1"'} and loaded.created_at == 1.5
    # Its next save writes the kind down and indexes it.
    store.save(loaded, {"a"})
    assert store.client.hget(store._session_key(record.key), "k") == kind.value
    assert store.count(kind) == 1


def test_count_costs_two_commands_on_one_key(
    private_redis: PrivateRedis, clock: ManualClock
) -> None:
    store = RedisSessionStore.from_url(private_redis.url, clock=clock)
    for n in range(30):
        store.save(make_record(clock, user_id=str(n % 3)))
    watcher = redis.Redis.from_url(private_redis.url, decode_responses=True)
    watcher.config_resetstat()
    for _ in range(5):
        assert store.count(RecordKind.SESSION) == 30
    calls = {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in watcher.info("commandstats").items()
    }
    for own in ("info", "config|resetstat"):  # the watcher's
        calls.pop(own, None)
    assert calls == {"zremrangebyscore": 5, "zcard": 5}
    watcher.close()
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:63a9/0",
        "redis://127.0.0.1:6379/x",
        "redis://:pw@h:99999/0",
        "redis://:pw@127.0.0.1:6379/0?bogus=1",
        "redis://127.0.0.1:6379/0?socket_timeout=abc",
    ],
)
def test_a_mistyped_redis_url_is_a_clear_configuration_error(url: str) -> None:
    from coatcheck.core.errors import ConfigurationError
    from coatcheck.stores.base import open_store

    with pytest.raises(ConfigurationError, match="COATCHECK_STORE_URL") as caught:
        open_store(url)
    assert "pw@" not in str(caught.value)
