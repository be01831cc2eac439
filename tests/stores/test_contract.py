"""The shipped store contract (``coatcheck.testing``), run against every store of ours.

``test_redis_cluster.py`` runs :class:`RedisContract` again on Redis Cluster
and behind Sentinel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.records import RecordKind
from coatcheck.stores.base import SessionStore, open_store
from coatcheck.stores.redis import RedisSessionStore
from coatcheck.testing import SessionStoreContract, make_record


class TestMemoryStore(SessionStoreContract):
    @pytest.fixture
    def store(self, clock: ManualClock) -> Iterator[SessionStore]:
        opened = open_store("memory://", clock=clock)
        yield opened
        opened.close()


class TestSQLiteStore(SessionStoreContract):
    @pytest.fixture
    def store(self, clock: ManualClock, tmp_path: Path) -> Iterator[SessionStore]:
        opened = open_store(f"sqlite:///{tmp_path / 'sessions.db'}", clock=clock)
        yield opened
        opened.close()


class RedisContract(SessionStoreContract):
    """The contract, and what a Redis store does besides; subclasses give the store."""

    expires_by_itself = True

    def test_the_user_index_outlives_touched_sessions(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        assert isinstance(store, RedisSessionStore)
        record = make_record(clock, user_id="alice")
        record.expires_at = clock() + 2
        store.save(record)
        for _ in range(3):
            clock.advance(1.5)
            store.touch(record.key, clock(), clock() + 600)
        # Redis expires by its own clock: compare the TTLs it holds.
        index_ttl = store.client.pttl(store._user_key("alice"))
        assert index_ttl >= store.client.pttl(store._session_key(record.key)) > 2000

    def test_the_kind_indexes_hold_only_live_keys(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        assert isinstance(store, RedisSessionStore)

        def indexed(kind: RecordKind) -> set[str]:
            return set(store.client.zrange(store._kind_key(kind), 0, -1))  # type: ignore[arg-type]

        short = make_record(clock)
        deleted, revoked, kept = (make_record(clock, "alice") for _ in range(3))
        short.expires_at = clock() + 1
        for record in (short, deleted, revoked, kept):
            store.save(record)
        remembered = make_record(clock, "alice", kind=RecordKind.REMEMBER)
        assert store.add(remembered) is True
        assert indexed(RecordKind.SESSION) == {r.key for r in (short, deleted, revoked, kept)}
        store.delete(deleted.key)
        assert store.delete_by_user("alice", keep=kept.key) == 2  # revoked, remembered
        assert indexed(RecordKind.SESSION) == {short.key, kept.key}
        assert indexed(RecordKind.REMEMBER) == set()
        clock.advance(2)
        store.save(make_record(clock))  # a write trims its kind's index
        assert kept.key in indexed(RecordKind.SESSION)
        assert short.key not in indexed(RecordKind.SESSION)
        assert store.count(RecordKind.SESSION) == 2  # kept and the one just saved
        kept.kind = RecordKind.TOKEN_FAMILY
        store.save(kept, set())
        assert indexed(RecordKind.TOKEN_FAMILY) == {kept.key}
        assert kept.key not in indexed(RecordKind.SESSION)
        store.touch(kept.key, clock(), clock() + 900)
        scores = store.client.zrange(
            store._kind_key(RecordKind.TOKEN_FAMILY), 0, -1, withscores=True
        )
        assert scores == [(kept.key, clock() + 900)]


class TestRedisStore(RedisContract):
    @pytest.fixture
    def store(self, redis_url: str, clock: ManualClock) -> Iterator[SessionStore]:
        opened = open_store(redis_url, clock=clock)
        yield opened
        opened.close()


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown session store scheme"):
        open_store("mongodb://localhost")


def test_sqlite_url_needs_a_path() -> None:
    with pytest.raises(ConfigurationError):
        open_store("sqlite://")
