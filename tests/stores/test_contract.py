"""One contract, run against every store (memory, SQLite, Redis)."""

from __future__ import annotations

import pytest

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, SessionRecord
from coatcheck.stores.base import SessionStore, open_store

POLICY = LifetimePolicy()


def make_record(clock: ManualClock, user_id: str | None = None, **data: str) -> SessionRecord:
    record = POLICY.new_record(store_key(new_session_id()), clock(), user_id=user_id)
    record.data = dict(data)
    record.meta = {"ip": "127.0.0.1", "user_agent": "pytest"}
    return record


def test_get_missing_is_none(store: SessionStore) -> None:
    assert store.get(store_key(new_session_id())) is None


def test_save_then_get_round_trips(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, user_id="7", greeting='"hello"', count="3")
    assert store.save(record) is True
    assert store.get(record.key) == record


def test_full_save_replaces_the_record(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, a='"1"', b='"2"')
    store.save(record)
    record.data = {"c": '"3"'}
    store.save(record)
    loaded = store.get(record.key)
    assert loaded is not None and loaded.data == {"c": '"3"'}


def test_partial_save_merges_only_changed_keys(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, a='"1"', b='"2"', c='"3"')
    store.save(record)
    # Another request changed b meanwhile.
    other = store.get(record.key)
    assert other is not None
    other.data["b"] = '"changed elsewhere"'
    store.save(other, {"b"})
    # This request sets a, deletes c, and knows nothing of b's change.
    record.data = {"a": '"new"', "b": '"2"'}
    assert store.save(record, {"a", "c"}) is True
    loaded = store.get(record.key)
    assert loaded is not None
    assert loaded.data == {"a": '"new"', "b": '"changed elsewhere"'}


def test_partial_save_merges_only_changed_meta_keys(
    store: SessionStore, clock: ManualClock
) -> None:
    record = make_record(clock, user_id="u1")
    record.meta = {"roles": ["admin"], "csrf": "s1", "ip": "10.0.0.1"}
    store.save(record)
    # An administrator demotes the user while one of their requests is running.
    demoted = store.get(record.key)
    assert demoted is not None
    demoted.meta["roles"] = []
    store.save(demoted, set(), changed_meta={"roles"})
    # The running request changes a data key and its own meta key only.
    record.data["cart"] = '"1"'
    record.meta["csrf"] = "s2"
    del record.meta["ip"]
    store.save(record, {"cart"}, changed_meta={"csrf", "ip"})
    loaded = store.get(record.key)
    assert loaded is not None
    assert loaded.meta == {"roles": [], "csrf": "s2"}
    assert loaded.data == {"cart": '"1"'}


def test_partial_save_never_recreates_a_deleted_record(
    store: SessionStore, clock: ManualClock
) -> None:
    record = make_record(clock, a='"1"')
    store.save(record)
    store.delete(record.key)
    record.data["a"] = '"2"'
    assert store.save(record, {"a"}) is False
    assert store.get(record.key) is None


def test_compare_and_set_applies_once(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, token='"t1"', other='"x"')
    store.save(record)
    first, second = store.get(record.key), store.get(record.key)
    assert first is not None and second is not None
    first.data["token"] = '"t2"'
    second.data["token"] = '"t3"'
    assert store.save(first, {"token"}, expect=("token", '"t1"')) is True
    assert store.save(second, {"token"}, expect=("token", '"t1"')) is False
    loaded = store.get(record.key)
    assert loaded is not None and loaded.data == {"token": '"t2"', "other": '"x"'}
    assert store.save(second, {"token"}, expect=("missing", '"t1"')) is False


def test_compare_and_set_needs_a_partial_save(store: SessionStore, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="expect= needs changed="):
        store.save(make_record(clock), expect=("token", "x"))


def test_partial_save_can_log_out(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, user_id="u1")
    store.save(record)
    record.user_id = None
    store.save(record, set())
    loaded = store.get(record.key)
    assert loaded is not None and loaded.user_id is None
    assert store.list_by_user("u1") == []


def test_touch_updates_times_only(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock, a='"1"')
    store.save(record)
    clock.advance(90)
    store.touch(record.key, clock(), clock() + 1800)
    loaded = store.get(record.key)
    assert loaded is not None
    assert loaded.last_seen_at == clock()
    assert loaded.expires_at == clock() + 1800
    assert loaded.data == record.data and loaded.handle == record.handle


def test_touch_of_missing_record_creates_nothing(store: SessionStore, clock: ManualClock) -> None:
    key = store_key(new_session_id())
    store.touch(key, clock(), clock() + 60)
    assert store.get(key) is None


def test_delete(store: SessionStore, clock: ManualClock) -> None:
    record = make_record(clock)
    store.save(record)
    store.delete(record.key)
    store.delete(record.key)  # twice is fine
    assert store.get(record.key) is None


def test_list_by_user(store: SessionStore, clock: ManualClock) -> None:
    first = make_record(clock, user_id="alice")
    store.save(first)
    clock.advance(1)
    second = make_record(clock, user_id="alice")
    store.save(second)
    store.save(make_record(clock, user_id="bob"))
    store.save(make_record(clock))
    assert [r.handle for r in store.list_by_user("alice")] == [first.handle, second.handle]
    assert store.list_by_user("nobody") == []


def test_list_by_user_leaves_out_deleted_and_expired(
    store: SessionStore, clock: ManualClock
) -> None:
    gone, old, live = (make_record(clock, user_id="alice") for _ in range(3))
    for record in (gone, old, live):
        store.save(record)
    store.delete(gone.key)
    store.touch(old.key, old.last_seen_at, clock() + 10)
    clock.advance(11)
    assert [r.handle for r in store.list_by_user("alice")] == [live.handle]


def test_list_all(store: SessionStore, clock: ManualClock) -> None:
    records = []
    for user in ("alice", "bob", None):
        records.append(make_record(clock, user_id=user))
        store.save(records[-1])
        clock.advance(1)
    expired = make_record(clock)
    expired.expires_at = clock() + 1
    store.save(expired)
    clock.advance(2)
    found = store.list_all()
    assert [r.handle for r in found] == [r.handle for r in reversed(records)]
    assert len(store.list_all(limit=2)) == 2


def test_touched_sessions_stay_listed_past_their_first_expiry(
    store: SessionStore, clock: ManualClock, store_kind: str
) -> None:
    record = make_record(clock, user_id="alice")
    record.expires_at = clock() + 2
    store.save(record)
    for _ in range(3):  # kept alive by touches well past the first expiry
        clock.advance(1.5)
        store.touch(record.key, clock(), clock() + 600)
    if store_kind == "redis":  # Redis expires by its own clock: compare the TTLs it holds
        from coatcheck.stores.redis import RedisSessionStore

        assert isinstance(store, RedisSessionStore)
        index_ttl = store.client.pttl(store._user_key("alice"))
        assert index_ttl >= store.client.pttl(store._session_key(record.key)) > 2000
    assert [r.handle for r in store.list_by_user("alice")] == [record.handle]
    assert store.delete_by_user("alice") == 1
    assert store.get(record.key) is None


def test_delete_by_user_keeps_the_named_session(store: SessionStore, clock: ManualClock) -> None:
    keep, a, b = (make_record(clock, user_id="alice") for _ in range(3))
    bob = make_record(clock, user_id="bob")
    for record in (keep, a, b, bob):
        store.save(record)
    assert store.delete_by_user("alice", keep=keep.key) == 2
    assert store.get(a.key) is None and store.get(b.key) is None
    assert store.get(keep.key) is not None and store.get(bob.key) is not None
    assert store.delete_by_user("alice") == 1
    assert store.get(keep.key) is None


def test_purge_expired(store: SessionStore, clock: ManualClock, store_kind: str) -> None:
    short = make_record(clock)
    short.expires_at = clock() + 5
    lasting = make_record(clock)
    store.save(short)
    store.save(lasting)
    clock.advance(6)
    purged = store.purge_expired()
    if store_kind == "redis":
        assert purged == 0  # Redis expires keys itself (TTL); checked below
    else:
        assert purged == 1
        assert store.get(short.key) is None
    assert store.get(lasting.key) is not None


def test_values_are_opaque_text(store: SessionStore, clock: ManualClock) -> None:
    tricky = {"d:x": '"colon"', "u": '"looks like a field"', "ünï": '"\\u00e9"', "": '""'}
    record = make_record(clock, **tricky)
    store.save(record)
    loaded = store.get(record.key)
    assert loaded is not None and loaded.data == tricky


def test_ping(store: SessionStore) -> None:
    store.ping()


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown session store scheme"):
        open_store("mongodb://localhost")


def test_sqlite_url_needs_a_path() -> None:
    with pytest.raises(ConfigurationError):
        open_store("sqlite://")
