"""The services object: what build_services wires, and the audit of security events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from coatcheck.auth.client import Client
from coatcheck.auth.services import Services, build_services
from coatcheck.core.clock import ManualClock
from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.records import SessionRecord
from coatcheck.core.settings import Settings
from coatcheck.core.signing import CookieSigner, signing_keys

from ..conftest import TEST_SECRET_KEY

PAST = 1_000_000_000.0  # 2001: whatever the system clock says, nothing here expired yet


def _settings(tmp_path: Path, **config: Any) -> Settings:
    return Settings.from_config(
        {
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            **config,
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.fixture
def built(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    clock.now = PAST
    services = build_services(
        _settings(tmp_path),
        secret_key=TEST_SECRET_KEY,
        fallbacks=["an older key of at least 32 characters"],
        hasher=PasswordHasher.fast_for_tests(),
        clock=clock,
    )
    yield services
    services.close()


def test_the_audit_records_the_event_the_log_line_and_tells_every_listener(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[tuple[str, dict[str, Any]]] = []
    services.listeners.extend(
        [lambda e, f: heard.append((e, f)), lambda e, f: heard.append((e, f))]
    )
    client = Client(ip="192.0.2.1", user_agent="agent", session_handle="h" * 32)
    with caplog.at_level(logging.INFO, logger="coatcheck.audit"):
        services.audit("something", client=client, user_id="7", username="bo\nb", detail={"k": 1})
    fields = {"user_id": 7, "username": "bo\nb", "detail": {"k": 1}}
    assert heard == [("something", fields), ("something", fields)]
    assert [r.getMessage() for r in caplog.records if r.name == "coatcheck.audit"] == [
        "security event something user=7 username='bo\\nb' ip='192.0.2.1' session=" + "h" * 32
    ]
    row = services.users.list_events(limit=1)[0]
    assert (row.event, row.user_id, row.username) == ("something", 7, "bo\nb")
    assert (row.ip, row.user_agent, row.session_handle) == ("192.0.2.1", "agent", "h" * 32)
    assert row.detail == {"k": 1}


@pytest.mark.parametrize(("user_id", "key"), [(7, 7), ("12", 12), ("abc", None), (None, None)])
def test_the_audit_keeps_only_numeric_user_ids(
    services: Services, user_id: object, key: int | None
) -> None:
    heard: list[dict[str, Any]] = []
    services.listeners.append(lambda e, f: heard.append(f))
    services.audit("something", user_id=user_id)  # type: ignore[arg-type]
    assert heard == [{"user_id": key, "username": None, "detail": None}]
    row = services.users.list_events(limit=1)[0]
    assert (row.user_id, row.ip, row.user_agent, row.session_handle) == (key, None, None, None)


def test_the_audit_runs_on_the_injected_clock(built: Services) -> None:
    built.audit("something")
    assert built.users.list_events(limit=1)[0].at == datetime.fromtimestamp(PAST, UTC)


def test_the_store_runs_on_the_injected_clock(built: Services) -> None:
    record = SessionRecord("k" * 64, "0" * 32, PAST, PAST, PAST + 10, user_id="1")
    built.store.save(record)
    assert [r.key for r in built.store.list_by_user("1")] == [record.key]


def test_the_signers_have_their_own_purposes_keys_and_clock(
    built: Services, clock: ManualClock
) -> None:
    keys = signing_keys(TEST_SECRET_KEY, ["an older key of at least 32 characters"])
    assert built.csrf_signer.sign("v") == CookieSigner(keys, "csrf", clock=clock).sign("v")
    assert built.remember_signer.sign("v") == CookieSigner(keys, "remember", clock=clock).sign("v")
    older = CookieSigner(keys[1:], "remember", clock=clock).sign("v")
    assert built.remember_signer.verify(older, max_age=60) == "v"
    assert built.csrf_signer.verify(built.remember_signer.sign("v"), max_age=60) is None
    claims = built.token_signer.verify(
        built.token_signer.sign(
            {"sub": "1", "iat": int(PAST), "exp": int(PAST) + 60, "jti": "j", "roles": []}
        )
    )
    assert claims["sub"] == "1"  # verified on the injected clock, in 2001


def test_the_throttle_runs_on_the_injected_clock(built: Services, clock: ManualClock) -> None:
    for _ in range(10):
        assert built.throttle.reserve_registration("192.0.2.1") is None
    clock.advance(100)
    refusal = built.throttle.reserve_registration("192.0.2.1")
    assert refusal is not None and refusal.wait == 3500


def test_the_throttle_follows_the_settings(tmp_path: Path, clock: ManualClock) -> None:
    services = build_services(
        _settings(tmp_path, COATCHECK_THROTTLE_REGISTER="1/hour"),
        secret_key=TEST_SECRET_KEY,
        clock=clock,
    )
    assert services.throttle.reserve_registration("192.0.2.1") is None
    assert services.throttle.reserve_registration("192.0.2.1") is not None
    assert isinstance(services.hasher, PasswordHasher)
    services.close()


def test_the_user_store_is_opened_once_with_its_schema(built: Services) -> None:
    users = built.users
    assert built.users is users
    assert users.create_user("alice", built.hasher.hash("a passphrase of some length")).id == 1
    assert built.load_user("1").username == "alice"
    assert built.load_user("not a number") is None
    assert built.lifetimes is built.settings.lifetimes


def test_given_stores_are_used(tmp_path: Path, services: Services, clock: ManualClock) -> None:
    again = build_services(
        _settings(tmp_path),
        secret_key=TEST_SECRET_KEY,
        store=services.store,
        users=services.users,
        clock=clock,
    )
    assert again.store is services.store and again.users is services.users


def test_the_given_hasher_and_user_loader_are_used(tmp_path: Path, clock: ManualClock) -> None:
    hasher = PasswordHasher.fast_for_tests()
    services = build_services(
        _settings(tmp_path),
        secret_key=TEST_SECRET_KEY,
        hasher=hasher,
        clock=clock,
        user_loader=lambda user_id: ("loaded", user_id),
    )
    assert services.hasher is hasher
    assert services.load_user("7") == ("loaded", "7")
    services.close()


def test_the_user_store_gets_the_pool_size(tmp_path: Path, clock: ManualClock) -> None:
    services = build_services(
        _settings(
            tmp_path,
            COATCHECK_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
            COATCHECK_DATABASE_POOL_SIZE=3,
        ),
        secret_key=TEST_SECRET_KEY,
        clock=clock,
    )
    users = services.users_factory()  # no connection is made before the first query
    assert users.engine.pool.size() == 3  # type: ignore[attr-defined]
    users.close()
    services.close()


def test_the_audit_looks_the_username_up_when_given_only_the_user_id(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    user = services.accounts.create_user("alice", "correct horse battery")
    with caplog.at_level(logging.INFO, logger="coatcheck.audit"):
        services.audit("something", user_id=str(user.id))
        services.audit("other", user_id=user.id, username="given")
        services.audit("third", user_id=user.id + 1)
    rows = services.users.list_events(limit=3)
    assert [(r.event, r.user_id, r.username) for r in rows] == [
        ("third", user.id + 1, None),
        ("other", user.id, "given"),
        ("something", user.id, "alice"),
    ]
    assert [r.getMessage().split()[2:5] for r in caplog.records if r.name == "coatcheck.audit"] == [
        ["something", f"user={user.id}", "username='alice'"],
        ["other", f"user={user.id}", "username='given'"],
        ["third", f"user={user.id + 1}", "username=None"],
    ]


@pytest.mark.parametrize(
    ("event", "level"),
    [
        ("remember_token_theft", logging.WARNING),
        ("refresh_token_reuse", logging.WARNING),
        ("login_throttled", logging.WARNING),
        ("login_succeeded", logging.INFO),
        ("session_revoked", logging.INFO),
    ],
)
def test_the_audit_logs_what_wants_attention_at_warning(
    services: Services, caplog: pytest.LogCaptureFixture, event: str, level: int
) -> None:
    with caplog.at_level(logging.INFO, logger="coatcheck.audit"):
        services.audit(event)
    assert [r.levelno for r in caplog.records if r.name == "coatcheck.audit"] == [level]


def test_an_app_with_its_own_users_and_no_user_store_gets_no_audit_rows(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = build_services(
        _settings(tmp_path),
        secret_key=TEST_SECRET_KEY,
        hasher=PasswordHasher.fast_for_tests(),
        user_loader=lambda user_id: None,
        clock=clock,
    )
    heard: list[str] = []
    services.listeners.append(lambda e, f: heard.append(e))
    assert services.uses_user_store is False
    monkeypatch.setattr(
        type(services), "users", property(lambda self: pytest.fail("the user store was opened"))
    )
    services.audit("something", user_id="7")
    assert heard == ["something"]
    monkeypatch.undo()
    services.close()
    assert not (tmp_path / "users.db").exists()
