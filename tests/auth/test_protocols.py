"""The protocols of auth/ tested with no application and no request."""

from __future__ import annotations

import pytest

from coatcheck.auth.client import Client
from coatcheck.auth.devices import Device
from coatcheck.auth.secret import is_shared_store
from coatcheck.auth.services import Services
from coatcheck.auth.sessions import SessionWrite
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import InvalidCredentials, TokenError
from coatcheck.core.records import RecordKind

PASSWORD = "correct horse battery"
HERE = Client(ip="192.0.2.1", user_agent="test")


def _write(record: object = None, **fields: object) -> SessionWrite:
    values: dict[str, object] = {
        "record": record,
        "user_id": None,
        "meta": {},
        "changed": set(),
        "changed_meta": frozenset(),
        "serialize": lambda keys: {},
        "handle": "0" * 32,
    }
    values.update(fields)
    return SessionWrite(**values)  # type: ignore[arg-type]


def test_a_stamp_starts_at_zero_and_only_moves_forward(services: Services) -> None:
    stamps = services.stamps
    assert stamps.current("7") == 0
    first = stamps.bump("7")
    second = stamps.bump("7")
    assert first[0] == 0 and first[1] > 0
    assert second == (first[1], second[1]) and second[1] > first[1]
    assert stamps.current("7") == second[1]
    assert stamps.current("8") == 0  # one stamp per user
    # The stamp is never a record of the user's: logging them out cannot drop it.
    assert services.store.list_by_user("7") == []
    # One stamp (a shared store also holds the signing key's fingerprint, as a stamp).
    shared = is_shared_store(services.settings.store_url)
    assert services.store.count(RecordKind.STAMP) == 1 + shared


def test_a_forgotten_stamp_comes_back_higher(services: Services, clock: ManualClock) -> None:
    _, old = services.stamps.bump("7")
    services.store.delete(RecordKind.STAMP.key("7"))  # expired and forgotten
    clock.advance(1)
    _, new = services.stamps.bump("7")
    assert new > old


def test_authenticate_reads_the_stamp_and_the_user_again(services: Services) -> None:
    user = services.accounts.create_user("alice", PASSWORD)
    _, stamp = services.stamps.bump(user.id)
    checked = services.accounts.authenticate("alice", PASSWORD, HERE)
    assert checked.user.id == user.id and checked.stamp == stamp
    services.accounts.set_disabled(user.id, True)
    with pytest.raises(InvalidCredentials):
        services.accounts.authenticate("alice", PASSWORD, HERE)


def test_a_new_session_is_stored_and_a_read_writes_nothing(services: Services) -> None:
    sessions = services.sessions
    outcome = sessions.persist(
        _write(
            user_id="1",
            meta={STAMP: 0},
            changed={"cart"},
            serialize=lambda keys: {"cart": "[1]"},
            modified=True,
            client_meta={"ip": "192.0.2.1", "user_agent": "test"},
        )
    )
    assert outcome.set_id is not None and outcome.record is not None
    loaded = sessions.load(outcome.set_id)
    assert loaded is not None and loaded.data == {"cart": "[1]"}
    assert loaded.meta["ip"] == "192.0.2.1"
    assert sessions.persist(_write(loaded, user_id="1")).set_id is None


def test_a_session_born_before_a_revocation_does_not_open(services: Services) -> None:
    outcome = services.sessions.persist(
        _write(user_id="1", meta={STAMP: 0}, modified=True, changed={"x"})
    )
    assert outcome.set_id is not None
    services.stamps.bump("1")
    assert services.sessions.load(outcome.set_id) is None


def test_an_anonymous_request_that_wrote_nothing_stores_nothing(services: Services) -> None:
    outcome = services.sessions.persist(_write(cookie_sent=True))
    assert outcome.delete and outcome.set_id is None
    assert services.store.count(RecordKind.SESSION) == 0


def test_revoke_others_keeps_this_device_under_the_new_stamp(services: Services) -> None:
    user = services.accounts.create_user("alice", PASSWORD)
    mine = services.tokens.issue(user, 0, HERE)
    theirs = services.tokens.issue(user, 0, HERE)
    handle = mine["refresh_token"].split(".")[0]
    revoked, stamp = services.devices.revoke_others(
        user.id, Device(family_handle=handle), client=HERE
    )
    assert revoked == 1 and stamp > 0
    assert services.tokens.verify(mine["access_token"])[1].handle == handle
    with pytest.raises(TokenError):
        services.tokens.verify(theirs["access_token"])
    assert services.tokens.refresh(mine["refresh_token"], HERE)["refresh_token"]


def test_a_stolen_refresh_token_ends_its_family(services: Services, clock: ManualClock) -> None:
    user = services.accounts.create_user("alice", PASSWORD)
    first = services.tokens.issue(user, 0, HERE)
    second = services.tokens.refresh(first["refresh_token"], HERE)
    clock.advance(services.settings.rotation_grace + 1)
    with pytest.raises(TokenError):
        services.tokens.refresh(first["refresh_token"], HERE)  # spent, past the grace
    with pytest.raises(TokenError):
        services.tokens.refresh(second["refresh_token"], HERE)  # the family is over
    assert [e.event for e in services.users.list_events(limit=1)] == ["refresh_token_reuse"]
