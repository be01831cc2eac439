"""Account operations with no app: exact audit rows, stamps and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck.auth.client import Client
from coatcheck.auth.devices import Device
from coatcheck.auth.services import Services
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import InvalidCredentials, PasswordRejected, Throttled
from coatcheck.core.records import RecordKind
from coatcheck.users import User

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
HERE = Client(ip="192.0.2.1", user_agent="test agent")
ADMIN = Client(ip="198.51.100.7", user_agent="admin agent")


@pytest.fixture
def alice(services: Services) -> User:
    return services.accounts.create_user("alice", PASSWORD, email="a@example.org", roles=["b", "a"])


def _last_event(services: Services) -> Any:
    return services.users.list_events(limit=1)[0]


def _audited(services: Services, event: str, user: User, client: Client) -> Any:
    row = _last_event(services)
    assert row.event == event
    assert (row.user_id, row.username) == (user.id, user.username)
    assert (row.ip, row.user_agent) == (client.ip, client.user_agent)
    return row


def test_create_user_stores_and_audits_exactly(services: Services) -> None:
    user = services.accounts.create_user(
        "alice", PASSWORD, email="a@example.org", roles=["b", "a"], client=ADMIN
    )
    stored = services.users.get(user.id)
    assert stored is not None
    assert (stored.username, stored.email, stored.roles) == ("alice", "a@example.org", ("a", "b"))
    assert services.hasher.verify(PASSWORD, stored.password_hash)[0]
    assert _audited(services, "user_created", user, ADMIN).detail is None


def test_register_creates_the_account_with_its_email_and_reads_its_stamp(
    services: Services,
) -> None:
    _, stamp = services.stamps.bump("1")  # the ID the first account gets
    checked = services.accounts.register("alice", PASSWORD, email="a@example.org", client=HERE)
    assert checked.user.id == 1 and checked.user.email == "a@example.org"
    assert checked.stamp == stamp
    _audited(services, "user_created", checked.user, HERE)


def test_registrations_are_throttled_per_address(services: Services) -> None:
    for number in range(10):
        services.accounts.register(f"user{number}", PASSWORD, client=HERE)
    with pytest.raises(Throttled) as caught:
        services.accounts.register("user10", PASSWORD, client=HERE)
    wait = caught.value.retry_after
    assert 1 <= wait <= 3600  # exactly 3600 on the injected clock; Redis runs on its own
    assert str(caught.value) == f"too many registrations from this address; retry after {wait} s"


def test_authenticate_returns_the_user_and_the_stamp_read_before_it(
    services: Services, alice: User
) -> None:
    _, stamp = services.stamps.bump(alice.id)
    checked = services.accounts.authenticate("alice", PASSWORD, HERE)
    assert checked.user == services.users.get(alice.id)
    assert checked.stamp == stamp


@pytest.mark.parametrize("username", ["alice", "bob"])
def test_a_failed_login_is_audited(services: Services, alice: User, username: str) -> None:
    with pytest.raises(InvalidCredentials):
        services.accounts.authenticate(username, "wrong password!", HERE)
    row = _last_event(services)
    assert row.event == "login_failed"
    assert row.user_id == (alice.id if username == "alice" else None)
    assert row.username == username and row.ip == "192.0.2.1"


def test_a_throttled_login_is_audited_once_with_its_scope(
    services: Services, clock: ManualClock
) -> None:
    username = "x" * 300
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            services.accounts.authenticate(username, PASSWORD, HERE)
    events = services.users.count_events()
    for _ in range(2):
        with pytest.raises(Throttled):
            services.accounts.authenticate(username, PASSWORD, HERE)
    assert services.users.count_events() == events + 1
    row = _last_event(services)
    assert row.event == "login_throttled"
    assert row.username == "x" * 256 and row.user_id is None
    assert (row.ip, row.user_agent) == ("192.0.2.1", "test agent")
    assert row.detail == {"scope": "pair"}


def test_change_password_checks_the_current_one_from_the_clients_address(
    services: Services, alice: User
) -> None:
    with pytest.raises(InvalidCredentials):
        services.accounts.change_password("alice", "wrong password!", NEW_PASSWORD, client=HERE)
    row = _last_event(services)
    assert row.event == "login_failed" and row.ip == "192.0.2.1"


def test_change_password_refuses_the_username_as_password(services: Services, alice: User) -> None:
    services.accounts.create_user("alexander-the-great", PASSWORD)
    with pytest.raises(PasswordRejected) as caught:
        services.accounts.change_password("alexander-the-great", PASSWORD, "Alexander-The-Great")
    assert caught.value.reason == "same_as_username"


def test_change_password_ends_every_other_device_and_is_audited(
    services: Services, alice: User
) -> None:
    mine = services.tokens.issue(alice, 0, HERE)
    theirs = services.tokens.issue(alice, 0, HERE)
    key = RecordKind.TOKEN_FAMILY.key(mine["refresh_token"].split(".")[0])
    stamp = services.accounts.change_password(
        "alice", PASSWORD, NEW_PASSWORD, keep=Device(family_key=key), client=HERE
    )
    assert stamp is not None and stamp == services.stamps.current(alice.id)
    assert services.accounts.authenticate("alice", NEW_PASSWORD, HERE).stamp == stamp
    assert [r.key for r in services.store.list_by_user(str(alice.id))] == [key]
    kept = services.store.get(key)
    assert kept is not None and kept.meta[STAMP] == stamp
    assert services.tokens.refresh(mine["refresh_token"], HERE)["refresh_token"]
    their_key = RecordKind.TOKEN_FAMILY.key(theirs["refresh_token"].split(".")[0])
    assert services.store.get(their_key) is None
    _audited(services, "password_changed", alice, HERE)


def test_change_password_keeping_nothing_returns_no_stamp(services: Services, alice: User) -> None:
    services.tokens.issue(alice, 0, HERE)
    assert services.accounts.change_password("alice", PASSWORD, NEW_PASSWORD, client=HERE) is None
    assert services.stamps.current(alice.id) > 0
    assert services.store.list_by_user(str(alice.id)) == []
    _audited(services, "password_changed", alice, HERE)


def test_disable_ends_every_device_and_is_audited_with_their_number(
    services: Services, alice: User
) -> None:
    services.tokens.issue(alice, 0, HERE)
    services.remember.issue(str(alice.id), 0, HERE)
    user = services.accounts.set_disabled(alice.id, True, client=ADMIN)
    assert user.disabled
    assert services.store.list_by_user(str(alice.id)) == []
    assert services.stamps.current(alice.id) > 0
    row = _audited(services, "user_disabled", alice, ADMIN)
    assert row.detail == {"sessions_revoked": 2}


def test_enable_is_audited_and_moves_no_stamp(services: Services, alice: User) -> None:
    services.accounts.set_disabled(alice.id, True)
    stamp = services.stamps.current(alice.id)
    user = services.accounts.set_disabled(alice.id, False, client=ADMIN)
    assert not user.disabled
    assert services.stamps.current(alice.id) == stamp
    assert _audited(services, "user_enabled", alice, ADMIN).detail is None
    assert services.accounts.authenticate("alice", PASSWORD, HERE).user.id == alice.id


def test_set_roles_carries_devices_over_and_audits_before_and_after(
    services: Services, alice: User
) -> None:
    pair = services.tokens.issue(alice, 0, HERE)
    user, stamp = services.accounts.set_roles(alice.id, ["c", "a"], client=ADMIN)
    assert user.roles == ("a", "c")
    assert stamp == services.stamps.current(alice.id)
    claims, family = services.tokens.verify(pair["access_token"])
    assert family.meta["roles"] == ["a", "c"]
    row = _audited(services, "roles_changed", alice, ADMIN)
    assert row.detail == {"before": ["a", "b"], "after": ["a", "c"]}


def test_attempts_from_no_address_are_counted_as_the_unknown_address(
    services: Services, alice: User
) -> None:
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            services.accounts.authenticate("alice", "wrong password!")
    refusal = services.throttle.reserve("alice", "")
    assert refusal is not None and refusal.scope == "pair"
    assert services.throttle.reserve("alice", "192.0.2.1") is None


def test_a_user_gone_while_the_password_was_checked_is_refused(
    services: Services, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.users, "get", lambda user_id: None)  # deleted meanwhile
    with pytest.raises(InvalidCredentials):
        services.accounts.authenticate("alice", PASSWORD, HERE)
