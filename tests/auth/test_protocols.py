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
    key = RecordKind.TOKEN_FAMILY.key(mine["refresh_token"].split(".")[0])
    revoked, stamp = services.devices.revoke_others(user.id, Device(family_key=key), client=HERE)
    assert revoked == 1 and stamp
    assert services.tokens.verify(mine["access_token"])[1].key == key
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


def test_a_device_kept_by_log_out_everywhere_else_is_not_kept_for_a_disabled_user(
    services: Services,
) -> None:
    # The review: the device asking for "everywhere else" was restamped after it
    # last read the user, so a disable racing it left that device alive.
    user = services.accounts.create_user("alice", PASSWORD)
    mine = services.tokens.issue(user, 0, HERE)
    key = RecordKind.TOKEN_FAMILY.key(mine["refresh_token"].split(".")[0])
    services.users.set_disabled(user.id, True)  # the admin's write, before its stamp moves
    revoked, stamp = services.devices.revoke_others(user.id, Device(family_key=key), client=HERE)
    assert stamp is None
    with pytest.raises(TokenError):
        services.tokens.verify(mine["access_token"])


def test_the_kept_device_takes_the_roles_read_after_the_stamp(services: Services) -> None:
    user = services.accounts.create_user("alice", PASSWORD, roles=("admin",))
    mine = services.tokens.issue(user, 0, HERE)
    key = RecordKind.TOKEN_FAMILY.key(mine["refresh_token"].split(".")[0])
    services.users.set_roles(user.id, [])  # a demotion racing the request
    services.devices.revoke_others(user.id, Device(family_key=key), client=HERE)
    _, family = services.tokens.verify(mine["access_token"])
    assert family.meta["roles"] == []


def test_a_lost_stamp_never_brings_back_what_it_killed(services: Services) -> None:
    # The review: with the stamp record gone (evicted, a failover), current() read 0
    # and records born dead under an older stamp worked again.
    user = services.accounts.create_user("alice", PASSWORD)
    racing = services.tokens.issue(user, services.stamps.current(user.id), HERE)
    services.devices.revoke_all(user.id, client=HERE)
    later = services.tokens.issue(user, services.stamps.current(user.id), HERE)
    services.store.delete(RecordKind.STAMP.key(str(user.id)))
    for pair in (racing, later):
        with pytest.raises(TokenError):
            services.tokens.verify(pair["access_token"])
    fresh = services.tokens.issue(user, services.stamps.current(user.id), HERE)
    assert services.tokens.verify(fresh["access_token"])  # born under no stamp: alive


def test_a_logout_racing_a_remember_use_is_no_theft(services: Services) -> None:
    # The review: the use's compare-and-set found the series gone and called it theft,
    # logging the user out everywhere.
    from coatcheck.auth import rotation

    user = services.accounts.create_user("alice", PASSWORD)
    issued = services.remember.issue(str(user.id), 0, HERE)
    record = services.store.get(issued.key)
    assert record is not None
    services.store.delete(issued.key)  # the logout lands between the read and the write
    outcome = rotation.consume(
        services.store,
        record,
        issued.cookie and services.remember_signer.verify(issued.cookie, 60).split(".")[1],  # type: ignore[union-attr]
        now=services.clock(),
        grace=30,
        make_successor=lambda: {"secret": rotation.new_secret()},
    )
    assert outcome.verdict is rotation.Verdict.GONE


def test_a_session_stored_after_its_series_ended_is_deleted(services: Services) -> None:
    # The review: a remember-me login in flight survived the logout of its series.
    from coatcheck.auth.sessions import SERIES_KEY

    user = services.accounts.create_user("alice", PASSWORD)
    issued = services.remember.issue(str(user.id), 0, HERE)
    services.remember.forget(None, key=issued.key)  # the owner logs out meanwhile
    outcome = services.sessions.persist(
        _write(
            user_id=str(user.id),
            meta={STAMP: 0, SERIES_KEY: issued.key},
            modified=True,
            changed={"x"},
            user_changed=True,
        )
    )
    assert outcome.delete and outcome.set_id is None
    assert services.store.count(RecordKind.SESSION) == 0


def test_the_admin_list_leaves_out_devices_dead_by_stamp(services: Services) -> None:
    # The review: Devices.everyone listed records a revocation had killed.
    user = services.accounts.create_user("alice", PASSWORD)
    racing = services.tokens.issue(user, 0, HERE)  # born under no stamp
    services.stamps.bump(user.id)  # a revocation whose deletes missed it
    assert racing["refresh_token"]
    assert all(d.user_id != str(user.id) for d in services.devices.everyone())
