"""The session store contract as a test suite, for any store to run.

A third-party store proves that it keeps the contract of
:class:`~coatcheck.stores.base.SessionStore` by subclassing
:class:`SessionStoreContract` in one of its own test modules and providing a
``store`` fixture, built with the ``clock`` fixture::

    import pytest
    from coatcheck.testing import SessionStoreContract

    class TestMyStore(SessionStoreContract):
        @pytest.fixture
        def store(self, clock):
            store = MyStore(clock=clock)
            yield store
            store.close()

Every ``test_*`` method then runs against that store. coatcheck's own stores
run the same suite.

This module imports pytest, so it needs coatcheck's test dependencies
(``pip install coatcheck[test]``, or pytest alone). Nothing else in coatcheck
imports it: pytest stays out of production.
"""

from __future__ import annotations

import threading

import pytest

from ..core.clock import ManualClock
from ..core.ids import new_session_id
from ..core.records import LifetimePolicy, RecordKind, SessionRecord
from ..stores.base import SessionStore

__all__ = ["SessionStoreContract", "make_record"]

_POLICY = LifetimePolicy()


def make_record(
    clock: ManualClock,
    user_id: str | None = None,
    *,
    kind: RecordKind = RecordKind.SESSION,
    **data: str,
) -> SessionRecord:
    """Return a new record of ``kind`` created now, holding ``data`` (JSON texts)."""
    record = _POLICY.new_record(kind.key(new_session_id()), clock(), user_id=user_id, kind=kind)
    record.data = dict(data)
    record.meta = {"ip": "127.0.0.1", "user_agent": "pytest"}
    return record


def _stamp(clock: ManualClock, user_id: str) -> SessionRecord:
    """Return a revocation stamp for ``user_id``: keyed by it, naming no user."""
    stamp = make_record(clock, kind=RecordKind.STAMP)
    stamp.key = RecordKind.STAMP.key(user_id)
    stamp.meta = {"revoked_before": clock()}
    return stamp


class SessionStoreContract:
    """Tests every session store must pass; subclass and provide a ``store`` fixture.

    The store must be built with the ``clock`` fixture, a
    :class:`~coatcheck.core.clock.ManualClock` that the tests move forward;
    override ``clock`` to start it elsewhere.
    """

    #: Set to ``True`` for a store whose backend forgets expired records on its
    #: own (Redis TTLs): its :meth:`~SessionStore.purge_expired` returns 0.
    expires_by_itself = False

    @pytest.fixture
    def clock(self) -> ManualClock:
        """Return the clock the store is built with."""
        return ManualClock()

    def test_get_missing_is_none(self, store: SessionStore) -> None:
        assert store.get(RecordKind.SESSION.key(new_session_id())) is None

    def test_get_pair_reads_a_record_and_the_one_it_names(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        first, second = make_record(clock, "7", x='"1"'), make_record(clock, y='"2"')
        store.save(first)
        store.save(second)
        pair = store.get_pair(first.key, lambda record: second.key)
        assert pair[0] is not None and pair[0].data == {"x": '"1"'}
        assert pair[1] is not None and pair[1].data == {"y": '"2"'}
        assert store.get_pair(first.key, lambda record: None) == (pair[0], None)
        assert store.get_pair(first.key, lambda record: "0" * 64)[1] is None
        asked: list[SessionRecord] = []

        def then(record: SessionRecord) -> str:
            asked.append(record)
            return first.key

        assert store.get_pair("0" * 64, then) == (None, None)
        assert asked == []  # no first record: nothing else is read

    def test_save_then_get_round_trips(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock, user_id="7", greeting='"hello"', count="3")
        assert store.save(record) is True
        assert store.get(record.key) == record

    def test_full_save_replaces_the_record(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock, a='"1"', b='"2"')
        store.save(record)
        record.data = {"c": '"3"'}
        store.save(record)
        loaded = store.get(record.key)
        assert loaded is not None and loaded.data == {"c": '"3"'}

    def test_partial_save_merges_only_changed_keys(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
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
        self, store: SessionStore, clock: ManualClock
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
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        record = make_record(clock, a='"1"')
        store.save(record)
        store.delete(record.key)
        record.data["a"] = '"2"'
        assert store.save(record, {"a"}) is False
        assert store.get(record.key) is None

    def test_compare_and_set_applies_once(self, store: SessionStore, clock: ManualClock) -> None:
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

    def test_compare_and_set_needs_a_partial_save(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        with pytest.raises(ValueError, match="expect= needs changed="):
            store.save(make_record(clock), expect=("token", "x"))

    def test_partial_save_can_log_out(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock, user_id="u1")
        store.save(record)
        record.user_id = None
        store.save(record, set())
        loaded = store.get(record.key)
        assert loaded is not None and loaded.user_id is None
        assert store.list_by_user("u1") == []

    def test_touch_updates_times_only(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock, a='"1"')
        store.save(record)
        clock.advance(90)
        store.touch(record.key, clock(), clock() + 1800)
        loaded = store.get(record.key)
        assert loaded is not None
        assert loaded.last_seen_at == clock()
        assert loaded.expires_at == clock() + 1800
        assert loaded.data == record.data and loaded.handle == record.handle

    def test_touch_of_missing_record_creates_nothing(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        key = RecordKind.SESSION.key(new_session_id())
        store.touch(key, clock(), clock() + 60)
        assert store.get(key) is None
        assert store.count(RecordKind.SESSION) == 0

    def test_delete(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock)
        store.save(record)
        store.delete(record.key)
        store.delete(record.key)  # twice is fine
        assert store.get(record.key) is None

    def test_list_by_user(self, store: SessionStore, clock: ManualClock) -> None:
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
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        gone, old, live = (make_record(clock, user_id="alice") for _ in range(3))
        for record in (gone, old, live):
            store.save(record)
        store.delete(gone.key)
        store.touch(old.key, old.last_seen_at, clock() + 10)
        clock.advance(11)
        assert [r.handle for r in store.list_by_user("alice")] == [live.handle]

    def test_list_all(self, store: SessionStore, clock: ManualClock) -> None:
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
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        record = make_record(clock, user_id="alice")
        record.expires_at = clock() + 2
        store.save(record)
        for _ in range(3):  # kept alive by touches well past the first expiry
            clock.advance(1.5)
            store.touch(record.key, clock(), clock() + 600)
        assert [r.handle for r in store.list_by_user("alice")] == [record.handle]
        assert store.count(RecordKind.SESSION) == 1
        assert store.delete_by_user("alice") == 1
        assert store.get(record.key) is None

    def test_delete_by_user_keeps_the_named_session(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        keep, a, b = (make_record(clock, user_id="alice") for _ in range(3))
        bob = make_record(clock, user_id="bob")
        for record in (keep, a, b, bob):
            store.save(record)
        assert store.delete_by_user("alice", keep=keep.key) == 2
        assert store.get(a.key) is None and store.get(b.key) is None
        assert store.get(keep.key) is not None and store.get(bob.key) is not None
        assert store.delete_by_user("alice") == 1
        assert store.get(keep.key) is None

    def test_purge_expired(self, store: SessionStore, clock: ManualClock) -> None:
        short = make_record(clock)
        short.expires_at = clock() + 5
        lasting = make_record(clock)
        store.save(short)
        store.save(lasting)
        clock.advance(6)
        purged = store.purge_expired()
        if self.expires_by_itself:
            assert purged == 0
        else:
            assert purged == 1
            assert store.get(short.key) is None
        assert store.get(lasting.key) is not None

    def test_values_are_opaque_text(self, store: SessionStore, clock: ManualClock) -> None:
        tricky = {"d:x": '"colon"', "u": '"looks like a field"', "ünï": '"\\u00e9"', "": '""'}
        tricky |= {"k": '"stamp"', "kind": '"token"'}  # what the Redis store's fields are named
        record = make_record(clock)
        record.data = dict(tricky)
        store.save(record)
        loaded = store.get(record.key)
        assert loaded is not None and loaded.data == tricky
        assert loaded.kind is RecordKind.SESSION

    def test_ping(self, store: SessionStore) -> None:
        store.ping()

    @pytest.mark.parametrize("kind", list(RecordKind))
    def test_every_kind_round_trips(
        self, store: SessionStore, clock: ManualClock, kind: RecordKind
    ) -> None:
        user_id = None if kind is RecordKind.STAMP else "alice"
        saved, added = make_record(clock, user_id, kind=kind), make_record(clock, kind=kind)
        store.save(saved)
        assert store.add(added) is True
        assert store.get(saved.key) == saved and store.get(added.key) == added
        saved.data["a"] = '"1"'
        assert store.save(saved, {"a"}) is True
        store.touch(saved.key, clock(), clock() + 60)
        loaded = store.get(saved.key)
        assert loaded is not None and loaded.kind is kind
        if user_id is not None:
            assert [r.kind for r in store.list_by_user(user_id)] == [kind]

    def test_add_creates_only_when_absent(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock, a='"first"')
        assert store.add(record) is True
        second = make_record(clock, a='"second"')
        second.key = record.key
        assert store.add(second) is False
        assert store.get(record.key) == record
        store.delete(record.key)
        assert store.add(second) is True
        assert store.get(record.key) == second

    def test_add_takes_the_place_of_an_expired_record(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        old = make_record(clock, a='"old"')
        old.expires_at = clock() + 5
        store.save(old)
        clock.advance(6)
        new = make_record(clock, a='"new"')
        new.key = old.key
        assert store.add(new) is True
        assert store.get(new.key) == new

    def test_add_is_atomic(self, store: SessionStore, clock: ManualClock) -> None:
        key = RecordKind.STAMP.key("alice")
        contenders = [make_record(clock, kind=RecordKind.STAMP) for _ in range(8)]
        for record in contenders:
            record.key = key
        won: list[SessionRecord] = []
        start = threading.Barrier(len(contenders))

        def contend(record: SessionRecord) -> None:
            start.wait()
            if store.add(record):
                won.append(record)

        threads = [threading.Thread(target=contend, args=(r,)) for r in contenders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1
        assert store.get(key) == won[0]

    def test_added_records_are_indexed_by_user(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        saved = make_record(clock, user_id="alice")
        store.save(saved)
        clock.advance(1)
        added = make_record(clock, user_id="alice", kind=RecordKind.REMEMBER)
        assert store.add(added) is True
        assert [r.key for r in store.list_by_user("alice")] == [saved.key, added.key]
        assert store.delete_by_user("alice") == 2
        assert store.get(added.key) is None
        assert store.count(RecordKind.REMEMBER) == 0

    def test_count_by_kind(self, store: SessionStore, clock: ManualClock) -> None:
        for kind, how_many in zip(RecordKind, (3, 2, 1, 0), strict=True):
            for n in range(how_many):
                record = make_record(clock, None if kind is RecordKind.STAMP else "u", kind=kind)
                if n % 2:
                    store.save(record)
                else:
                    assert store.add(record) is True
        counts = {kind: store.count(kind) for kind in RecordKind}
        assert list(counts.values()) == [3, 2, 1, 0]
        assert store.count(RecordKind.SESSION) == 3  # counting changes nothing

    def test_count_leaves_out_expired_and_deleted(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        short = make_record(clock)
        touched, deleted, lasting = (make_record(clock, "u") for _ in range(3))
        short.expires_at = touched.expires_at = clock() + 5
        for record in (short, touched, deleted, lasting):
            store.save(record)
        store.delete(deleted.key)
        store.touch(touched.key, clock(), clock() + 60)
        assert store.count(RecordKind.SESSION) == 3
        clock.advance(6)
        assert store.count(RecordKind.SESSION) == 2
        assert store.delete_by_user("u", keep=lasting.key) == 1
        assert store.count(RecordKind.SESSION) == 1

    def test_count_follows_a_change_of_kind(self, store: SessionStore, clock: ManualClock) -> None:
        record = make_record(clock)
        store.save(record)
        record.kind = RecordKind.REMEMBER
        store.save(record, set())
        assert (store.count(RecordKind.SESSION), store.count(RecordKind.REMEMBER)) == (0, 1)
        record.kind = RecordKind.TOKEN_FAMILY
        store.save(record)
        assert (store.count(RecordKind.REMEMBER), store.count(RecordKind.TOKEN_FAMILY)) == (0, 1)

    def test_stamps_are_never_listed_or_deleted_by_user(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        session = make_record(clock, user_id="alice")
        store.save(session)
        stamp = _stamp(clock, "alice")
        assert store.add(stamp) is True
        assert store.add(_stamp(clock, "alice")) is False
        assert [r.key for r in store.list_by_user("alice")] == [session.key]
        assert store.delete_by_user("alice") == 1
        assert store.get(stamp.key) == stamp
        assert store.count(RecordKind.STAMP) == 1

    def test_a_stamp_naming_a_user_is_refused(
        self, store: SessionStore, clock: ManualClock
    ) -> None:
        stamp = _stamp(clock, "alice")
        stamp.user_id = "alice"
        with pytest.raises(ValueError, match="stamp"):
            store.add(stamp)
        with pytest.raises(ValueError, match="stamp"):
            store.save(stamp)
        assert store.get(stamp.key) is None
