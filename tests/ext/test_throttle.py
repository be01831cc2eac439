"""Login throttling: per account and per address, 429 + Retry-After, reset after the window."""

from __future__ import annotations

import types
import uuid
from collections.abc import Callable

import limits.storage.memory
import pytest
from flask import Flask

from coatcheck.core.clock import ManualClock

from .auth_app import PASSWORD, Browser, build_auth_app


@pytest.fixture
def limits_clock(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> ManualClock:
    """Make the limits library's in-memory counters read our clock."""
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=clock))
    import coatcheck.core.clock as system_time  # the throttle's default clock

    monkeypatch.setattr(system_time, "time", types.SimpleNamespace(time=clock))
    return clock


def fail(app: Flask, username: str, times: int) -> None:
    for _ in range(times):
        assert Browser(app).login(username, "wrong password here").status_code == 401


def test_five_failures_lock_the_account_even_for_the_right_password(
    make_app: Callable[..., Flask], limits_clock: ManualClock
) -> None:
    # In-process counters, whose window follows the test's clock (Redis times its own).
    app = build_auth_app(make_app, COATCHECK_RATELIMIT_URL="memory://")
    Browser(app).register("alice")
    fail(app, "alice", 5)
    response = Browser(app).login("alice")
    assert response.status_code == 429
    assert response.json == {
        "error": "throttled",
        "message": response.json["message"],  # type: ignore[index]
    }
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    # Another account is not affected.
    Browser(app).register("bobby")
    assert Browser(app).login("bobby").status_code == 200
    # After the window the account works again.
    limits_clock.advance(15 * 60 + 1)
    assert Browser(app).login("alice").status_code == 200


def test_a_success_resets_the_account_count(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    fail(app, name, 4)
    assert Browser(app).login(name).status_code == 200
    fail(app, name, 4)
    assert Browser(app).login(name).status_code == 200


def test_failures_from_one_address_are_capped(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app, COATCHECK_THROTTLE_ADDRESS="8/15 minutes")
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    for i in range(8):
        fail(app, f"nobody{i}-{name}", 1)
    response = Browser(app).login(name)
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_throttled_attempts_are_audited(make_app: Callable[..., Flask]) -> None:
    from coatcheck import CoatCheck

    app = build_auth_app(make_app)
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    fail(app, name, 5)
    Browser(app).login(name)
    assert CoatCheck.state(app).users.list_events(limit=1)[0].event == "login_throttled"


def test_counters_in_redis_are_shared_between_apps(
    make_app: Callable[..., Flask], redis_url: str
) -> None:
    first = build_auth_app(make_app, COATCHECK_STORE_URL=redis_url)
    second = build_auth_app(make_app, COATCHECK_STORE_URL=redis_url)
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(first).register(name)
    fail(first, name, 3)
    fail(second, name, 2)
    assert Browser(first).login(name, PASSWORD).status_code == 429
    assert Browser(second).login(name, PASSWORD).status_code == 429
