"""Remember-me series with no app: exact records, logins, replays, theft and forgetting."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coatcheck.auth import rotation
from coatcheck.auth.client import Client
from coatcheck.auth.remember import Issued
from coatcheck.auth.services import Services
from coatcheck.auth.sessions import SERIES_KEY
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import is_session_id, new_handle, new_session_id, store_key
from coatcheck.core.records import RecordKind, SessionRecord

PASSWORD = "correct horse battery"
HERE = Client(ip="192.0.2.1", user_agent="test agent")
NOW = 1_800_000_000.0
LIFETIME = 2592000.0


@pytest.fixture
def user_id(services: Services, clock: ManualClock) -> str:
    clock.now = NOW
    return str(services.accounts.create_user("alice", PASSWORD).id)


def _series(services: Services, cookie: str) -> tuple[str, str]:
    value = services.remember_signer.verify(cookie, max_age=int(LIFETIME))
    assert value is not None
    series, secret = value.split(".")
    return series, secret


def _session(services: Services, user_id: str, series_key: str | None) -> str:
    key = store_key(new_session_id())
    meta: dict[str, object] = {STAMP: 0}
    if series_key is not None:
        meta[SERIES_KEY] = series_key
    services.store.save(
        SessionRecord(key, new_handle(), NOW, NOW, NOW + 3600, user_id=user_id, meta=meta)
    )
    return key


def test_issue_stores_the_series_exactly(services: Services, user_id: str) -> None:
    issued = services.remember.issue(user_id, 5, HERE)
    series, secret = _series(services, issued.cookie)
    assert issued == Issued(issued.cookie, RecordKind.REMEMBER.key(series), int(LIFETIME))
    record = services.store.get(issued.key)
    assert record is not None and record.kind is RecordKind.REMEMBER
    assert record.user_id == user_id
    assert (record.created_at, record.last_seen_at, record.expires_at) == (
        NOW,
        NOW,
        NOW + LIFETIME,
    )
    assert record.meta == {
        STAMP: 5,
        "aal": 1,
        "amr": ["pwd"],
        "auth_at": NOW,  # a password login now, unless told otherwise
        "ip": "192.0.2.1",
        "user_agent": "test agent",
    }
    assert record.data == rotation.initial_fields(secret, NOW)
    assert is_session_id(series) and is_session_id(secret) and series != secret


def test_a_use_rotates_and_logs_in_with_a_new_session(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    _, stamp = services.stamps.bump(user_id)
    issued = services.remember.issue(user_id, stamp, HERE)
    clock.advance(100.5)
    login = services.remember.use(issued.cookie, HERE)
    assert login is not None
    assert (login.user_id, login.key, login.stamp) == (user_id, issued.key, stamp)
    assert login.replayed is False
    assert login.max_age == int(LIFETIME - 100.5)
    assert is_session_id(login.session_id)
    assert _series(services, login.cookie)[0] == _series(services, issued.cookie)[0]
    record = services.store.get(issued.key)
    assert record is not None
    assert record.last_seen_at == NOW + 100.5
    assert record.expires_at == NOW + LIFETIME  # a use does not extend the series


def test_the_previous_cookie_within_the_grace_window_gets_the_same_login(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    _, stamp = services.stamps.bump(user_id)
    issued = services.remember.issue(user_id, stamp, HERE)
    first = services.remember.use(issued.cookie, HERE)
    clock.advance(services.settings.rotation_grace)
    again = services.remember.use(issued.cookie, HERE)
    assert first is not None and again is not None
    assert again.replayed is True
    assert (again.session_id, again.key, again.stamp) == (first.session_id, first.key, stamp)
    assert _series(services, again.cookie) == _series(services, first.cookie)


def test_the_max_age_never_goes_below_zero(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    clock.advance(LIFETIME - 0.5)
    login = services.remember.use(issued.cookie, HERE)
    assert login is not None and login.max_age == 0


def test_a_series_ends_exactly_at_its_expiry(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    record = services.store.get(issued.key)
    assert record is not None
    record.expires_at = NOW + 10
    services.store.save(record)
    clock.advance(10)
    assert services.remember.use(issued.cookie, HERE) is None


def test_a_cookie_older_than_the_lifetime_is_refused_even_if_its_series_lives_on(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    record = services.store.get(issued.key)
    assert record is not None
    record.expires_at = NOW + 2 * LIFETIME  # e.g. the lifetime was shortened since
    services.store.save(record)
    clock.advance(LIFETIME + 1)
    assert services.remember.use(issued.cookie, HERE) is None
    assert services.store.get(issued.key) is not None  # not theft: nothing was presented


def test_a_series_born_before_a_revocation_ends_with_its_sessions(
    services: Services, user_id: str
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    linked = _session(services, user_id, issued.key)
    services.stamps.bump(user_id)
    assert services.remember.use(issued.cookie, HERE) is None
    assert services.store.get(issued.key) is None
    assert services.store.get(linked) is None


def test_a_series_born_under_a_stamp_that_was_lost_stays_dead(
    services: Services, user_id: str
) -> None:
    _, stamp = services.stamps.bump(user_id)
    issued = services.remember.issue(user_id, stamp, HERE)
    linked = _session(services, user_id, issued.key)
    services.store.delete(RecordKind.STAMP.key(user_id))  # evicted, lost in a failover
    assert services.remember.use(issued.cookie, HERE) is None
    assert services.store.get(issued.key) is None
    assert services.store.get(linked) is None


def test_a_series_carried_over_between_the_two_reads_logs_in(
    services: Services, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    linked = _session(services, user_id, issued.key)
    real_read = services.stamps.read
    carried: list[int] = []

    def read_after_a_role_change(uid: str | int) -> int | None:
        if not carried:  # the change lands between the series' read and the stamp's
            carried.append(services.devices.carry_over(user_id, ["admin"]))
        return real_read(uid)

    monkeypatch.setattr(services.stamps, "read", read_after_a_role_change)
    login = services.remember.use(issued.cookie, HERE)
    assert login is not None and login.replayed is False
    assert (login.key, login.stamp) == (issued.key, carried[0])
    record = services.store.get(issued.key)
    assert record is not None and record.meta[STAMP] == carried[0] and "roles" not in record.meta
    assert services.store.get(linked) is not None


def test_a_series_still_stale_on_the_second_read_ends(
    services: Services, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    linked = _session(services, user_id, issued.key)
    services.stamps.bump(user_id)
    store, real_get = services.store, services.store.get
    reads: list[str] = []

    def counting_get(key: str) -> SessionRecord | None:
        reads.append(key)
        return real_get(key)

    monkeypatch.setattr(store, "get", counting_get)
    assert services.remember.use(issued.cookie, HERE) is None
    monkeypatch.setattr(store, "get", real_get)
    # The series, the stamp, the series once more: then it ends.
    assert reads == [issued.key, RecordKind.STAMP.key(user_id), issued.key]
    assert store.get(issued.key) is None and store.get(linked) is None


def test_a_stolen_cookie_ends_everything_of_the_user_and_is_audited(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    assert services.remember.use(issued.cookie, HERE) is not None
    others = [_session(services, user_id, None), _session(services, user_id, None)]
    clock.advance(services.settings.rotation_grace + 1)
    thief = Client(ip="203.0.113.9", user_agent="thief")
    assert services.remember.use(issued.cookie, thief) is None
    assert services.store.get(issued.key) is None
    assert all(services.store.get(key) is None for key in others)
    assert services.stamps.current(user_id) > 0  # a racing login loses too
    event = services.users.list_events(limit=1)[0]
    assert event.event == "remember_token_theft"
    assert event.user_id == int(user_id)
    assert (event.ip, event.user_agent) == ("203.0.113.9", "thief")
    assert event.detail == {"sessions_revoked": 2}


def test_a_stolen_cookie_of_a_series_without_a_user_moves_no_stamp(
    services: Services, user_id: str, clock: ManualClock
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    record = services.store.get(issued.key)
    assert record is not None
    services.store.save(dataclasses.replace(record, user_id=None))
    services.remember.use(issued.cookie, HERE)
    clock.advance(services.settings.rotation_grace + 1)
    # A shared (Redis) store also keeps the signing key's fingerprint as a stamp-kind record.
    stamps = services.store.count(RecordKind.STAMP)
    assert services.remember.use(issued.cookie, HERE) is None
    assert services.store.get(issued.key) is None
    assert services.store.count(RecordKind.STAMP) == stamps
    assert services.stamps.read("") is None and services.stamps.read(user_id) is None
    event = services.users.list_events(limit=1)[0]
    assert event.event == "remember_token_theft"
    assert event.user_id is None and event.detail == {"sessions_revoked": 0}


def _sealing_key(secret: str) -> bytes:
    return hashlib.sha256(b"coatcheck.rotation.successor\0" + secret.encode()).digest()


def test_a_replayed_successor_without_a_session_id_logs_nobody_in(
    services: Services, user_id: str
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    _, secret = _series(services, issued.cookie)
    record = services.store.get(issued.key)
    assert record is not None
    sealed = AESGCM(_sealing_key(secret)).encrypt(bytes(12), b'{"secret":"x"}', None)
    record.data = {
        rotation.CURRENT: json.dumps("0" * 64),
        rotation.PREVIOUS: record.data[rotation.CURRENT],
        rotation.ROTATED_AT: json.dumps(NOW),
        rotation.SEALED: json.dumps(base64.urlsafe_b64encode(bytes(12) + sealed).decode()),
    }
    services.store.save(record)
    assert services.remember.use(issued.cookie, HERE) is None
    assert services.store.get(issued.key) is not None  # a replay, not a theft


@pytest.mark.parametrize("bad", ["short", "a" * 43 + ".b", ""])
def test_a_signed_cookie_with_a_malformed_secret_never_reaches_the_series(
    services: Services, user_id: str, bad: str
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    series, _ = _series(services, issued.cookie)
    forged = services.remember_signer.sign(f"{series}.{bad}")
    assert services.remember.use(forged, HERE) is None
    assert services.store.get(issued.key) is not None
    assert services.remember.use(issued.cookie, HERE) is not None


def test_forget_ends_the_series_of_a_cookie_and_the_sessions_it_logged_in(
    services: Services, user_id: str
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    linked = _session(services, user_id, issued.key)
    unrelated = _session(services, user_id, None)
    services.remember.forget(issued.cookie)
    assert services.store.get(issued.key) is None
    assert services.store.get(linked) is None
    assert services.store.get(unrelated) is not None


def test_forget_by_key_wins_over_the_cookie(services: Services, user_id: str) -> None:
    kept = services.remember.issue(user_id, 0, HERE)
    ended = services.remember.issue(user_id, 0, HERE)
    services.remember.forget(kept.cookie, key=ended.key)
    assert services.store.get(ended.key) is None
    assert services.store.get(kept.key) is not None


@pytest.mark.parametrize("cookie", [None, "garbage", "x" * 600])
def test_forget_without_a_usable_cookie_does_nothing(
    services: Services, user_id: str, cookie: str | None
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    services.remember.forget(cookie)
    assert services.store.get(issued.key) is not None


def test_forget_leaves_records_of_other_kinds_alone(services: Services, user_id: str) -> None:
    session = _session(services, user_id, None)
    services.remember.forget(None, key=session)
    record = services.store.get(session)
    assert record is not None and record.meta == {STAMP: 0}


def test_carrying_a_series_moves_only_its_stamp(services: Services, user_id: str) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    before = services.store.get(issued.key)
    _, stamp = services.stamps.bump(user_id)
    services.devices._carry({issued.key}, stamp, ["admin"])
    after = services.store.get(issued.key)
    assert before is not None and after is not None
    assert after.meta == {**before.meta, STAMP: stamp}  # a series keeps no roles
    assert after.data == before.data
    assert (after.expires_at, after.last_seen_at) == (before.expires_at, before.last_seen_at)
    services.devices._carry({RecordKind.REMEMBER.key("unknown")}, stamp, [])  # nothing to do
    login = services.remember.use(issued.cookie, HERE)
    assert login is not None and login.stamp == stamp


def test_carrying_never_undoes_a_use_or_revives_an_ended_series(
    services: Services, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    store = services.store
    stale = store.get(issued.key)
    assert stale is not None
    real_get = store.get
    login = services.remember.use(issued.cookie, HERE)
    assert login is not None
    _, stamp = services.stamps.bump(user_id)
    monkeypatch.setattr(store, "get", lambda key: dataclasses.replace(stale, meta=dict(stale.meta)))
    services.devices._carry({issued.key}, stamp, [])  # read before the use, written after
    monkeypatch.setattr(store, "get", real_get)
    record = store.get(issued.key)
    assert record is not None and record.meta[STAMP] == stamp
    assert services.remember.use(login.cookie, HERE) is not None
    services.remember.forget(None, key=issued.key)
    monkeypatch.setattr(store, "get", lambda key: dataclasses.replace(stale, meta=dict(stale.meta)))
    services.devices._carry({issued.key}, stamp, [])  # read before the end, written after
    monkeypatch.setattr(store, "get", real_get)
    assert store.get(issued.key) is None


def test_a_use_racing_a_logout_is_no_theft(
    services: Services, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = services.remember.issue(user_id, 0, HERE)
    other = _session(services, user_id, None)
    store, real_save = services.store, services.store.save

    def logout_first(record: SessionRecord, *args: object, **kwargs: object) -> bool:
        store.delete(record.key)  # the owner's logout lands between the read and the write
        return real_save(record, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "save", logout_first)
    events = services.users.count_events()
    assert services.remember.use(issued.cookie, HERE) is None
    monkeypatch.undo()
    assert store.get(issued.key) is None
    assert store.get(other) is not None  # no theft: the user's other devices live on
    assert services.stamps.read(user_id) is None
    assert services.users.count_events() == events
