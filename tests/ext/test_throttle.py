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


def _from(app: Flask, address: str) -> Browser:
    browser = Browser(app)
    browser.client.environ_base["REMOTE_ADDR"] = address
    return browser


def test_a_stranger_cannot_lock_the_owner_out_from_elsewhere(
    make_app: Callable[..., Flask],
) -> None:
    # The review: five wrong guesses locked any account, admins included, from anywhere.
    app = build_auth_app(make_app)
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    for _ in range(5):
        assert _from(app, "203.0.113.7").login(name, "wrong password here").status_code == 401
    assert _from(app, "203.0.113.7").login(name).status_code == 429
    assert _from(app, "198.51.100.20").login(name).status_code == 200


def test_a_campaign_from_many_addresses_meets_the_account_ceiling(
    make_app: Callable[..., Flask],
) -> None:
    app = build_auth_app(make_app, COATCHECK_THROTTLE_ACCOUNT_CEILING="8/15 minutes")
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    for i in range(8):
        assert _from(app, f"203.0.113.{i}").login(name, "wrong guess here").status_code == 401
    assert _from(app, "203.0.113.99").login(name, "wrong guess here").status_code == 429


def test_a_throttled_key_is_audited_once_per_window(make_app: Callable[..., Flask]) -> None:
    # The review: every throttled attempt wrote an audit row (500 rows in 1.4 s).
    from coatcheck import CoatCheck

    app = build_auth_app(make_app)
    name = f"u{uuid.uuid4().hex[:10]}"
    Browser(app).register(name)
    fail(app, name, 5)
    for _ in range(30):
        assert Browser(app).login(name).status_code == 429
    events = CoatCheck.state(app).users.list_events(limit=200)
    assert [e.event for e in events].count("login_throttled") == 1


def test_registration_is_throttled_per_address(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app, COATCHECK_THROTTLE_REGISTER="3/hour")
    from coatcheck import register_user

    @app.post("/api/signup")
    def signup() -> tuple[str, int]:
        from flask import request

        body = request.get_json()
        register_user(body["username"], body["password"])
        return "", 201

    prefix = uuid.uuid4().hex[:8]
    statuses = []
    for i in range(5):
        browser = _from(app, "192.0.2.50")
        browser.csrf()
        reply = browser.post("/api/signup", {"username": f"r{prefix}{i}", "password": PASSWORD})
        statuses.append(reply.status_code)
    assert statuses == [201, 201, 201, 429, 429]
    other = _from(app, "192.0.2.51")
    other.csrf()
    reply = other.post("/api/signup", {"username": f"r{prefix}x", "password": PASSWORD})
    assert reply.status_code == 201
