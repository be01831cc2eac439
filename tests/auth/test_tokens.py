"""Token families with no app: exact records, claims, audit rows, errors and expiry times."""

from __future__ import annotations

import dataclasses
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from coatcheck.auth import rotation
from coatcheck.auth.client import Client
from coatcheck.auth.services import Services
from coatcheck.auth.sessions import USER_ID
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import TokenError
from coatcheck.core.ids import is_handle, is_session_id
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.users import User

PASSWORD = "correct horse battery"
HERE = Client(ip="192.0.2.1", user_agent="test agent")
NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def alice(services: Services, clock: ManualClock) -> User:
    clock.now = NOW
    return services.accounts.create_user("alice", PASSWORD, roles=["b", "a", "b"])


def _family_id(pair: dict[str, Any]) -> str:
    return str(pair["refresh_token"]).split(".")[0]


def _family(services: Services, pair: dict[str, Any]) -> SessionRecord:
    record = services.store.get(RecordKind.TOKEN_FAMILY.key(_family_id(pair)))
    assert record is not None
    return record


def _last_event(services: Services) -> Any:
    return services.users.list_events(limit=1)[0]


def _error(call: Any, *args: Any) -> str:
    with pytest.raises(TokenError) as caught:
        call(*args)
    return str(caught.value)


def test_issue_stores_the_family_exactly(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 5, HERE)
    family_id, secret = str(pair["refresh_token"]).split(".")
    assert is_session_id(family_id) and is_session_id(secret) and family_id != secret
    family = _family(services, pair)
    assert family.key == RecordKind.TOKEN_FAMILY.key(family_id)
    assert family.kind is RecordKind.TOKEN_FAMILY
    # The public handle is a separate random value: it addresses nothing.
    assert is_handle(family.handle) and family.handle not in (family_id, secret)
    assert services.store.get(RecordKind.TOKEN_FAMILY.key(family.handle)) is None
    assert family.user_id == str(alice.id)
    assert (family.created_at, family.last_seen_at) == (NOW, NOW)
    assert family.expires_at == NOW + 30 * DAY  # the idle lifetime comes first
    assert family.meta == {
        USER_ID: alice.id,
        "username": "alice",
        "roles": ["a", "b"],
        STAMP: 5,
        "born_at": NOW,
        "aal": 1,
        "amr": ["pwd"],
        "auth_at": NOW,
        "ip": "192.0.2.1",
        "user_agent": "test agent",
    }
    assert family.data == rotation.initial_fields(secret, NOW)
    assert type(family.meta[USER_ID]) is int


@pytest.mark.parametrize("user_id", [7, "u-7", uuid.UUID(int=7)])
def test_issue_keeps_the_user_id_with_its_type_or_as_text(services: Services, user_id: Any) -> None:
    user = SimpleNamespace(id=user_id, username="u", roles=())
    family = _family(services, services.tokens.issue(user, 0, HERE))
    expected = str(user_id) if isinstance(user_id, uuid.UUID) else user_id
    assert family.meta[USER_ID] == expected and type(family.meta[USER_ID]) is type(expected)
    assert family.user_id == str(user_id)
    event = _last_event(services)  # the user given, not one looked up by ID (there is none)
    assert (event.event, event.username) == ("login_succeeded", "u")


def test_issue_answers_with_an_exact_pair(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    claims, family = services.tokens.verify(pair["access_token"])
    assert claims["sub"] == str(alice.id)
    assert (claims["iat"], claims["exp"]) == (int(NOW), int(NOW) + 900)
    assert claims["roles"] == ["a", "b"]
    assert claims["fam"] == family.key == RecordKind.TOKEN_FAMILY.key(_family_id(pair))
    assert family.handle != claims["fam"]


def test_issue_is_audited_with_the_family_as_session(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    event = _last_event(services)
    assert event.event == "login_succeeded"
    assert (event.user_id, event.username) == (alice.id, "alice")
    assert (event.ip, event.user_agent) == ("192.0.2.1", "test agent")
    handle = _family(services, pair).handle
    assert event.session_handle == handle
    assert event.detail == {"via": "token", "family": handle}


def test_a_refresh_rotates_and_extends_the_family(
    services: Services, alice: User, clock: ManualClock
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    clock.advance(DAY)
    second = services.tokens.refresh(first["refresh_token"], HERE)
    assert _family_id(second) == _family_id(first)
    family = _family(services, second)
    assert family.last_seen_at == NOW + DAY
    assert family.expires_at == NOW + DAY + 30 * DAY
    claims, _ = services.tokens.verify(second["access_token"])
    assert (claims["iat"], claims["exp"]) == (int(NOW + DAY), int(NOW + DAY) + 900)


def test_a_family_ends_at_its_absolute_lifetime_however_often_refreshed(
    services: Services, alice: User, clock: ManualClock
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    for _ in range(3):
        clock.advance(29 * DAY)
        pair = services.tokens.refresh(pair["refresh_token"], HERE)
    assert _family(services, pair).expires_at == NOW + 90 * DAY


def test_a_family_from_before_born_at_counts_its_lifetime_from_the_refresh(
    services: Services, alice: User, clock: ManualClock
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    family = _family(services, pair)
    del family.meta["born_at"]
    services.store.save(family, set(), changed_meta={"born_at"})
    clock.advance(DAY)
    pair = services.tokens.refresh(pair["refresh_token"], HERE)
    assert _family(services, pair).expires_at == NOW + DAY + 30 * DAY


def test_a_refresh_carries_the_users_roles_and_name_into_the_family(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.user_loader = lambda user_id: SimpleNamespace(
        id=alice.id, username="alicia", roles=("z", "y", "z")
    )
    pair = services.tokens.refresh(pair["refresh_token"], HERE)
    family = _family(services, pair)
    assert family.meta["roles"] == ["y", "z"] and family.meta["username"] == "alicia"
    claims, _ = services.tokens.verify(pair["access_token"])
    assert claims["roles"] == ["y", "z"]


def test_a_replay_answers_with_todays_roles(
    services: Services, alice: User, clock: ManualClock
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    second = services.tokens.refresh(first["refresh_token"], HERE)
    services.users.set_roles(alice.id, ["c"])  # no stamp moved: a plain edit
    clock.advance(services.settings.rotation_grace)
    replay = services.tokens.refresh(first["refresh_token"], HERE)
    assert replay["refresh_token"] == second["refresh_token"]
    claims, _ = services.tokens.verify(replay["access_token"])
    assert claims["roles"] == ["c"]


def test_a_user_loaded_without_a_disabled_flag_is_active(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.user_loader = lambda user_id: SimpleNamespace(id=alice.id, username="alice", roles=())
    assert services.tokens.refresh(pair["refresh_token"], HERE)["refresh_token"]


def test_a_family_born_before_a_revocation_is_refused_and_ended(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.stamps.bump(alice.id)
    error = _error(services.tokens.refresh, pair["refresh_token"])
    assert error == "the token's family was revoked"
    assert services.store.get(RecordKind.TOKEN_FAMILY.key(_family_id(pair))) is None


@pytest.mark.parametrize("gone", [False, True])
def test_a_disabled_or_gone_user_ends_the_family(
    services: Services, alice: User, gone: bool
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    if gone:
        services.user_loader = lambda user_id: None
    else:
        services.users.set_disabled(alice.id, True)  # the stamp stays: the user decides
    error = _error(services.tokens.refresh, pair["refresh_token"])
    assert error == "the token's user is disabled or gone"
    assert services.store.get(RecordKind.TOKEN_FAMILY.key(_family_id(pair))) is None


def test_a_reused_refresh_token_ends_the_family_and_is_audited(
    services: Services, alice: User, clock: ManualClock
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    handle = _family(services, first).handle
    services.tokens.refresh(first["refresh_token"], HERE)
    clock.advance(services.settings.rotation_grace + 1)
    thief = Client(ip="203.0.113.9", user_agent="thief")
    error = _error(services.tokens.refresh, first["refresh_token"], thief)
    assert error == "refresh token reused: its family is revoked"
    assert services.store.get(RecordKind.TOKEN_FAMILY.key(_family_id(first))) is None
    event = _last_event(services)
    assert event.event == "refresh_token_reuse"
    assert (event.user_id, event.username) == (alice.id, "alice")
    assert (event.ip, event.user_agent) == ("203.0.113.9", "thief")
    assert event.detail == {"family": handle}


@pytest.mark.parametrize(
    "token",
    [
        "a" * 43,
        "0" * 32 + "." + "a" * 42,
        "0" * 32 + ".",
        "0" * 31 + "." + "a" * 43,
        "0" * 32 + "." + "a" * 43 + ".x",
        "0" * 43 + "." + "a" * 42,
        "0" * 42 + "." + "a" * 43,
        "0" * 43 + ".",
        "." + "a" * 43,
        "0" * 43 + "a" * 43,
        "",
    ],
)
def test_a_malformed_refresh_token_is_refused_before_the_store(
    services: Services, token: str
) -> None:
    assert _error(services.tokens.refresh, token) == "not a refresh token"


def test_a_refresh_token_with_a_bad_secret_leaves_its_family_alone(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    forged = _family_id(pair) + ".short"
    assert _error(services.tokens.refresh, forged) == "not a refresh token"
    assert services.tokens.refresh(pair["refresh_token"], HERE)["refresh_token"]


def test_an_unknown_refresh_token_is_refused(services: Services) -> None:
    token = "0" * 43 + "." + "a" * 43
    assert _error(services.tokens.refresh, token) == "unknown, expired or revoked refresh token"


def test_the_public_handle_addresses_no_family(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    family = _family(services, pair)
    secret = str(pair["refresh_token"]).split(".")[1]
    assert _error(services.tokens.refresh, f"{family.handle}.{secret}") == "not a refresh token"
    events = services.users.count_events()
    services.tokens.revoke(f"{family.handle}.{secret}", HERE)
    services.tokens.end(family.handle)
    assert _family(services, pair) == family
    assert services.users.count_events() == events


def test_a_refresh_token_needs_a_secret_of_its_family_to_revoke_it(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    family = _family(services, pair)
    events = services.users.count_events()
    services.tokens.revoke(_family_id(pair) + "." + "a" * 43, HERE)
    assert _family(services, pair) == family
    assert services.users.count_events() == events


def test_a_family_ends_exactly_at_its_expiry(
    services: Services, alice: User, clock: ManualClock
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    family = _family(services, pair)
    family.expires_at = NOW + 10
    services.store.save(family)
    clock.advance(10)
    error = _error(services.tokens.refresh, pair["refresh_token"])
    assert error == "unknown, expired or revoked refresh token"
    assert _error(services.tokens.verify, pair["access_token"]) == "the token's family is revoked"


def test_verify_refuses_a_token_of_an_ended_family(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.tokens.end(_family(services, pair).key)
    assert _error(services.tokens.verify, pair["access_token"]) == "the token's family is revoked"


def test_verify_refuses_a_token_born_before_a_revocation(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.stamps.bump(alice.id)
    assert _error(services.tokens.verify, pair["access_token"]) == "the token's family was revoked"


def test_a_revoked_access_token_is_refused_and_its_family_lives_on(
    services: Services, alice: User
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    services.tokens.revoke(first["access_token"], HERE)
    assert _error(services.tokens.verify, first["access_token"]) == "the token is revoked"
    claims = services.token_signer.verify(first["access_token"])
    family = _family(services, first)
    assert family.data["x:" + claims["jti"]] == json.dumps(claims["exp"])
    assert set(rotation.FIELDS) <= set(family.data)
    second = services.tokens.refresh(first["refresh_token"], HERE)
    assert services.tokens.verify(second["access_token"])[1].key == family.key


def test_revoking_an_expired_access_token_still_records_it(
    services: Services, alice: User, clock: ManualClock
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    clock.advance(DAY)
    services.tokens.revoke(pair["access_token"], HERE)
    claims = services.token_signer.verify(pair["access_token"], verify_exp=False)
    assert "x:" + claims["jti"] in _family(services, pair).data


def test_revoked_access_token_ids_are_forgotten_once_they_expire(
    services: Services, alice: User, clock: ManualClock
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    services.tokens.revoke(first["access_token"], HERE)
    exp = services.token_signer.verify(first["access_token"])["exp"]
    jti = "x:" + services.token_signer.verify(first["access_token"])["jti"]
    clock.now = exp  # not yet past its exp: kept
    second = services.tokens.refresh(first["refresh_token"], HERE)
    services.tokens.revoke(second["access_token"], HERE)
    assert jti in _family(services, first).data
    clock.now = exp + 0.5
    third = services.tokens.refresh(second["refresh_token"], HERE)
    services.tokens.revoke(third["access_token"], HERE)
    data = _family(services, first).data
    assert jti not in data
    assert sorted(k for k in data if k.startswith("x:")) == sorted(
        "x:" + services.token_signer.verify(p["access_token"], verify_exp=False)["jti"]
        for p in (second, third)
    )


def test_revoking_a_refresh_token_ends_its_family_and_is_audited(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    handle = _family(services, pair).handle
    services.tokens.revoke(pair["refresh_token"], HERE)
    assert services.store.get(RecordKind.TOKEN_FAMILY.key(_family_id(pair))) is None
    event = _last_event(services)
    assert event.event == "session_revoked"
    assert event.user_id == alice.id
    assert (event.ip, event.user_agent) == ("192.0.2.1", "test agent")
    assert event.detail == {"family": handle}


def test_revoking_tokens_of_an_ended_family_is_ignored(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    services.tokens.end(_family(services, pair).key)
    events = services.users.count_events()
    services.tokens.revoke(pair["access_token"], HERE)
    services.tokens.revoke(pair["refresh_token"], HERE)
    assert services.users.count_events() == events


def test_carrying_a_family_moves_its_stamp_and_roles_only(services: Services, alice: User) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    before = _family(services, pair)
    services.devices._carry({before.key}, 42, ["r"])
    after = _family(services, pair)
    assert after.meta == {**before.meta, STAMP: 42, "roles": ["r"]}
    assert after.data == before.data
    assert (after.expires_at, after.last_seen_at) == (before.expires_at, before.last_seen_at)
    services.devices._carry({"0" * 64}, 43, ["s"])  # unknown: nothing to do
    assert _family(services, pair) == after


def test_carrying_never_undoes_a_refresh_or_revives_an_ended_family(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    stale = _family(services, pair)
    store = services.store
    real_get = store.get
    second = services.tokens.refresh(pair["refresh_token"], HERE)
    _, stamp = services.stamps.bump(alice.id)
    monkeypatch.setattr(store, "get", lambda key: dataclasses.replace(stale, meta=dict(stale.meta)))
    services.devices._carry({stale.key}, stamp, ["r"])  # read before the refresh, written after
    monkeypatch.setattr(store, "get", real_get)
    family = _family(services, second)
    assert (family.meta[STAMP], family.meta["roles"]) == (stamp, ["r"])
    assert services.tokens.refresh(second["refresh_token"], HERE)["refresh_token"]
    services.tokens.end(stale.key)
    monkeypatch.setattr(store, "get", lambda key: dataclasses.replace(stale, meta=dict(stale.meta)))
    services.devices._carry({stale.key}, stamp, ["r"])  # read before the end, written after
    monkeypatch.setattr(store, "get", real_get)
    assert store.get(stale.key) is None


def test_a_refresh_racing_a_revocation_is_no_reuse(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    other = services.tokens.issue(alice, 0, HERE)
    store, real_save = services.store, services.store.save
    deleted: list[str] = []

    def revoke_first(record: SessionRecord, *args: object, **kwargs: object) -> bool:
        store.delete(record.key)  # the revocation lands between the read and the write
        monkeypatch.setattr(store, "delete", deleted.append)
        return real_save(record, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "save", revoke_first)
    events = services.users.count_events()
    assert _error(services.tokens.refresh, pair["refresh_token"], HERE) == (
        "the token's family was revoked"
    )
    monkeypatch.undo()
    assert deleted == [] and services.users.count_events() == events
    assert services.stamps.read(alice.id) is None
    assert services.tokens.refresh(other["refresh_token"], HERE)["refresh_token"]


def test_reuse_is_audited_with_the_name_the_family_holds(
    services: Services, alice: User, clock: ManualClock
) -> None:
    first = services.tokens.issue(alice, 0, HERE)
    services.tokens.refresh(first["refresh_token"], HERE)
    family = _family(services, first)
    family.meta["username"] = "alice-then"  # as it was at the last refresh
    services.store.save(family, set(), changed_meta={"username"})
    clock.advance(services.settings.rotation_grace + 1)
    _error(services.tokens.refresh, first["refresh_token"], HERE)
    event = _last_event(services)
    assert (event.event, event.user_id, event.username) == (
        "refresh_token_reuse",
        alice.id,
        "alice-then",
    )


@pytest.mark.parametrize("fam", ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "0" * 64 + "\n"])
def test_an_access_token_naming_no_store_key_is_refused_before_the_store(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch, fam: str
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    claims = services.token_signer.verify(pair["access_token"])
    forged = services.token_signer.sign({**claims, "fam": fam})
    monkeypatch.setattr(services.store, "get", lambda key: pytest.fail(f"store read {key!r}"))
    assert _error(services.tokens.verify, forged) == "the token's family is revoked"
    services.tokens.revoke(forged, HERE)  # ignored, without a read either


def test_a_family_carried_over_between_the_two_reads_refreshes(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    real_read = services.stamps.read
    carried: list[int] = []

    def read_after_a_role_change(uid: str | int) -> int | None:
        if not carried:  # the change lands between the family's read and the stamp's
            carried.append(services.devices.carry_over(str(alice.id), ["c"]))
        return real_read(uid)

    monkeypatch.setattr(services.stamps, "read", read_after_a_role_change)
    second = services.tokens.refresh(pair["refresh_token"], HERE)
    monkeypatch.undo()
    family = _family(services, second)
    assert family.meta[STAMP] == carried[0]
    claims, verified = services.tokens.verify(second["access_token"])
    assert verified.key == family.key and claims["roles"] == ["a", "b"]  # the user's, read after


def test_a_family_still_stale_on_the_second_read_ends(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    key = _family(services, pair).key
    services.stamps.bump(alice.id)
    store, real_get = services.store, services.store.get
    reads: list[str] = []

    def counting_get(read: str) -> SessionRecord | None:
        reads.append(read)
        return real_get(read)

    monkeypatch.setattr(store, "get", counting_get)
    assert (
        _error(services.tokens.refresh, pair["refresh_token"]) == "the token's family was revoked"
    )
    monkeypatch.undo()
    assert reads == [key, RecordKind.STAMP.key(str(alice.id)), key]
    assert store.get(key) is None
