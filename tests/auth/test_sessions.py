"""Cookie sessions with no app: what a request writes, exactly, and what a record opens."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from coatcheck.auth.client import Client
from coatcheck.auth.services import Services
from coatcheck.auth.sessions import SessionOutcome, SessionWrite
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import StoreUnavailable
from coatcheck.core.ids import is_session_id, new_session_id, store_key
from coatcheck.core.records import RecordKind, SessionRecord

NOW = 1_800_000_000.0
HANDLE = "0" * 32


def _write(record: SessionRecord | None = None, **fields: Any) -> SessionWrite:
    values: dict[str, Any] = {
        "record": record,
        "user_id": None,
        "meta": {},
        "changed": set(),
        "changed_meta": frozenset(),
        "serialize": lambda keys: {},
        "handle": HANDLE,
    }
    values.update(fields)
    return SessionWrite(**values)


def _values(data: dict[str, Any]) -> Any:
    def serialize(keys: set[str] | None) -> dict[str, str]:
        return {k: json.dumps(v) for k, v in data.items() if keys is None or k in keys}

    return serialize


@pytest.fixture
def stored(services: Services, clock: ManualClock) -> tuple[str, SessionRecord]:
    """A logged-in session with two keys, stored at NOW."""
    clock.now = NOW
    outcome = services.sessions.persist(
        _write(
            user_id="7",
            meta={STAMP: 0},
            changed={"a", "b"},
            serialize=_values({"a": 1, "b": 2}),
            modified=True,
            user_changed=True,
            client_meta={"ip": "192.0.2.1", "user_agent": "test"},
        )
    )
    assert outcome.set_id is not None and outcome.record is not None
    return outcome.set_id, outcome.record


def test_a_new_session_is_stored_exactly(
    services: Services, stored: tuple[str, SessionRecord]
) -> None:
    session_id, record = stored
    assert is_session_id(session_id) and record.key == store_key(session_id)
    loaded = services.sessions.load(session_id)
    assert loaded is not None
    assert loaded.handle == HANDLE and loaded.user_id == "7"
    assert loaded.data == {"a": "1", "b": "2"}
    assert loaded.meta == {"ip": "192.0.2.1", "user_agent": "test", STAMP: 0}
    assert (loaded.created_at, loaded.last_seen_at) == (NOW, NOW)
    assert loaded.expires_at == NOW + services.lifetimes.idle_timeout


def test_a_rotation_merges_the_changed_keys_into_the_stored_record(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    session_id, record = stored
    concurrent = services.sessions.load(session_id)
    assert concurrent is not None
    concurrent.data = {"c": json.dumps(3)}
    services.store.save(concurrent, {"c"})  # another request added a key meanwhile
    clock.advance(60)
    outcome = services.sessions.persist(
        _write(
            record,
            user_id="7",
            meta={STAMP: 0},
            changed={"a", "b"},
            serialize=_values({"a": 10}),
            modified=True,
            rotate=True,
        )
    )
    assert outcome.set_id is not None and outcome.set_id != session_id
    assert services.sessions.load(session_id) is None
    rotated = services.sessions.load(outcome.set_id)
    assert rotated is not None
    assert rotated.data == {"a": "10", "c": "3"}
    assert rotated.created_at == NOW  # a rotation keeps the session's age
    assert rotated.last_seen_at == NOW + 60
    assert rotated.expires_at == services.lifetimes.expires_at(NOW, NOW + 60)


def test_a_fresh_rotation_starts_the_absolute_timeout_anew(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    _, record = stored
    clock.advance(60)
    outcome = services.sessions.persist(
        _write(record, user_id="8", meta={STAMP: 0}, rotate=True, fresh=True, user_changed=True)
    )
    assert outcome.record is not None
    assert outcome.record.created_at == NOW + 60
    assert outcome.record.user_id == "8"


def test_a_rotation_of_a_session_revoked_meanwhile_deletes_the_cookie(
    services: Services, stored: tuple[str, SessionRecord]
) -> None:
    _, record = stored
    services.store.delete(record.key)
    outcome = services.sessions.persist(_write(record, user_id="7", rotate=True, modified=True))
    assert outcome == SessionOutcome(delete=True)
    assert services.store.count(RecordKind.SESSION) == 0


def test_a_new_session_can_be_stored_under_a_given_id(services: Services) -> None:
    session_id = new_session_id()
    outcome = services.sessions.persist(
        _write(
            user_id="7",
            meta={STAMP: 0},
            changed={"a"},
            serialize=_values({"a": 1}),
            modified=True,
            next_id=session_id,
        )
    )
    assert outcome.set_id == session_id
    assert services.sessions.load(session_id) is not None


def test_load_refuses_what_is_not_a_live_session(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    session_id, record = stored
    assert services.sessions.load("not a session id") is None
    assert services.sessions.load(new_session_id()) is None
    clock.advance(services.lifetimes.idle_timeout)
    assert services.sessions.load(session_id) is None
    assert services.store.get(record.key) is None  # an expired record is deleted


def test_load_leaves_a_record_born_before_a_revocation_for_the_revocation(
    services: Services, stored: tuple[str, SessionRecord]
) -> None:
    session_id, record = stored
    services.stamps.bump("7")
    assert services.sessions.load(session_id) is None
    assert services.store.get(record.key) is not None
    assert services.sessions.is_current(SessionRecord("k", HANDLE, NOW, NOW, NOW + 1))


def test_load_user_asks_the_applications_loader_with_the_id(services: Services) -> None:
    services.user_loader = lambda user_id: ("loaded", user_id)
    assert services.load_user("7") == ("loaded", "7")


def test_a_login_rotating_a_session_revoked_meanwhile_starts_a_new_one(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    _, record = stored
    services.store.delete(record.key)
    clock.advance(60)
    outcome = services.sessions.persist(
        _write(
            record,
            user_id="8",
            meta={STAMP: 0},
            changed={"a"},
            serialize=_values({"a": 5}),
            modified=True,
            rotate=True,
            fresh=True,
            user_changed=True,
        )
    )
    assert outcome.set_id is not None
    loaded = services.sessions.load(outcome.set_id)
    assert loaded is not None
    assert (loaded.user_id, loaded.data, loaded.meta) == ("8", {"a": "5"}, {STAMP: 0})
    assert loaded.created_at == NOW + 60


def test_a_change_saves_its_keys_and_meta_and_answers_with_the_record(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    session_id, record = stored
    clock.advance(5)
    outcome = services.sessions.persist(
        _write(
            record,
            user_id="7",
            meta={STAMP: 0, "flag": True},
            changed={"b"},
            changed_meta=frozenset({"flag"}),
            serialize=_values({"a": 1, "b": 20}),
            modified=True,
        )
    )
    assert outcome == SessionOutcome(record=record)
    loaded = services.sessions.load(session_id)
    assert loaded is not None
    assert loaded.data == {"a": "1", "b": "20"}
    assert loaded.meta == {"ip": "192.0.2.1", "user_agent": "test", STAMP: 0, "flag": True}
    assert loaded.last_seen_at == NOW + 5


def test_a_change_to_a_session_revoked_meanwhile_deletes_the_cookie(
    services: Services, stored: tuple[str, SessionRecord]
) -> None:
    _, record = stored
    services.store.delete(record.key)
    outcome = services.sessions.persist(
        _write(record, user_id="7", changed={"a"}, serialize=_values({"a": 3}), modified=True)
    )
    assert outcome == SessionOutcome(delete=True)
    assert services.store.get(record.key) is None


def test_a_remember_me_replay_answers_with_the_stored_session(
    services: Services, stored: tuple[str, SessionRecord]
) -> None:
    _, record = stored
    reissued = new_session_id()
    outcome = services.sessions.persist(_write(record, user_id="7", reissue_id=reissued))
    assert outcome == SessionOutcome(set_id=reissued, record=record)


def test_a_failed_touch_is_logged_and_the_request_goes_on(
    services: Services,
    stored: tuple[str, SessionRecord],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, record = stored

    def unavailable(*args: object) -> None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(services.store, "touch", unavailable)
    clock.advance(services.lifetimes.touch_interval)
    with caplog.at_level(logging.WARNING, logger="coatcheck.session"):
        outcome = services.sessions.persist(_write(record, user_id="7"))
    assert outcome == SessionOutcome(record=record)
    assert record.last_seen_at == NOW + services.lifetimes.touch_interval
    assert [r.getMessage() for r in caplog.records if r.name == "coatcheck.session"] == [
        "could not record last-seen: down"
    ]


def test_a_client_keeps_its_address_and_agent_as_text() -> None:
    assert Client().meta() == {"ip": "", "user_agent": ""}
    assert Client("192.0.2.1", "agent", "h").meta() == {"ip": "192.0.2.1", "user_agent": "agent"}


def test_touch_records_a_read_at_most_once_per_interval(
    services: Services, stored: tuple[str, SessionRecord], clock: ManualClock
) -> None:
    _, record = stored
    interval = services.lifetimes.touch_interval
    services.sessions.touch(record, NOW + interval - 1)  # too soon: nothing written
    again = services.store.get(record.key)
    assert again is not None and again.last_seen_at == NOW
    assert record.last_seen_at == NOW
    services.sessions.touch(record, NOW + interval)
    again = services.store.get(record.key)
    assert again is not None
    assert record.last_seen_at == again.last_seen_at == NOW + interval
    assert again.expires_at == record.expires_at
    clock.now = NOW + 3 * interval
    services.sessions.touch(record)  # no time given: the clock's
    again = services.store.get(record.key)
    assert again is not None and again.last_seen_at == NOW + 3 * interval
