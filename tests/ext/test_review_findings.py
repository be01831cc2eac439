"""Regression tests for defects found in review."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, session

from coatcheck import CoatCheck, csrf_exempt, login_user
from coatcheck.ext import set_user_roles

from .auth_app import PASSWORD, Browser, build_auth_app


def test_parallel_guesses_cannot_pass_the_account_limit(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app, COATCHECK_RATELIMIT_URL="memory://")
    Browser(app).register("alice")
    browsers = [Browser(app) for _ in range(20)]
    for browser in browsers:
        browser.csrf()
    start = threading.Barrier(len(browsers), timeout=10)
    statuses: list[int] = []

    def guess(browser: Browser) -> None:
        start.wait()
        reply = browser.post("/api/login", {"username": "alice", "password": "wrong guess here"})
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=guess, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_an_in_flight_request_cannot_restore_a_removed_role(
    make_app: Callable[..., Flask],
) -> None:
    app = build_auth_app(make_app)
    loaded, demoted = threading.Event(), threading.Event()

    @app.get("/slow-cart")
    def slow_cart() -> Any:
        _ = session.get("cart")  # the session (with role admin) is loaded
        loaded.set()
        demoted.wait(timeout=10)
        session["cart"] = ["book"]
        return jsonify(ok=True)

    state = CoatCheck.state(app)
    state.users.create_user("mallory", state.hasher.hash(PASSWORD), roles=("admin",))
    browser = Browser(app)
    browser.login("mallory")
    worker = threading.Thread(target=lambda: browser.get("/slow-cart"))
    worker.start()
    assert loaded.wait(timeout=10)
    with app.test_request_context():
        set_user_roles(1, [])
    demoted.set()
    worker.join(timeout=10)
    assert browser.get("/admin", headers={"Accept": "application/json"}).status_code == 403
    assert browser.get("/api/me").json["user"]["roles"] == []  # type: ignore[index]


@pytest.mark.parametrize("field", ["username", "password"])
def test_lone_surrogates_are_refused_not_a_500(make_app: Callable[..., Flask], field: str) -> None:
    app = build_auth_app(make_app)
    Browser(app).register("alice")
    body = {"username": "alice", "password": PASSWORD, field: "ab\ud800cdefghijklmnop"}
    login = Browser(app)
    login.csrf()
    assert login.post("/api/login", body).status_code == 401
    register = Browser(app)
    register.csrf()
    body["username"] = "bobby" if field == "password" else body["username"]
    assert register.post("/api/register", body).status_code == 400


def test_a_typed_username_cannot_forge_log_lines(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = build_auth_app(make_app)
    forged = "x\n2026-01-01 INFO coatcheck.audit: security event login_succeeded user=1"
    with caplog.at_level(logging.INFO, logger="coatcheck.audit"):
        Browser(app).login(forged, "whatever password")
    lines = [r.getMessage() for r in caplog.records if r.name == "coatcheck.audit"]
    assert lines and all("\n" not in line for line in lines)


def test_a_failed_login_names_no_session(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    Browser(app).login("nobody-at-all", "whatever password")
    [event] = CoatCheck.state(app).users.list_events(limit=1)
    assert event.event == "login_failed" and event.session_handle is None


def test_flask_cookie_settings_are_not_silently_ignored(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        make_app(SESSION_COOKIE_SAMESITE="Strict")
    assert "SESSION_COOKIE_SAMESITE set, but coatcheck's cookies follow" in caplog.text


def test_an_unusable_throttle_store_is_a_clear_configuration_error(
    make_app: Callable[..., Flask],
) -> None:
    from coatcheck import ConfigurationError

    with pytest.raises(ConfigurationError, match="COATCHECK_RATELIMIT_URL") as caught:
        make_app(COATCHECK_RATELIMIT_URL="nosuch://user:hunter2secret@host/0")
    assert "hunter2secret" not in str(caught.value)


@pytest.mark.parametrize("change", ["demote", "disable"])
def test_a_rotation_cannot_undo_a_change_made_while_it_ran(
    make_app: Callable[..., Flask], change: str
) -> None:
    from coatcheck import disable_user

    app = build_auth_app(make_app)
    loaded, changed = threading.Event(), threading.Event()

    @app.get("/slow-rotate")
    def slow_rotate() -> Any:
        _ = session.get("x")  # the session, still admin, is loaded
        loaded.set()
        changed.wait(timeout=10)
        CoatCheck().rotate()  # as a password change does
        return jsonify(ok=True)

    state = CoatCheck.state(app)
    state.users.create_user("mallory", state.hasher.hash(PASSWORD), roles=("admin",))
    browser = Browser(app)
    browser.login("mallory")
    worker = threading.Thread(target=lambda: browser.get("/slow-rotate"))
    worker.start()
    assert loaded.wait(timeout=10)
    with app.test_request_context():
        if change == "demote":
            set_user_roles(1, [])
        else:
            disable_user(1)
    changed.set()
    worker.join(timeout=10)
    me = browser.get("/api/me")
    if change == "demote":
        assert me.json["user"]["roles"] == []  # type: ignore[index]
    else:
        assert me.status_code == 401


def test_every_response_that_sets_a_cookie_is_not_stored_by_caches(
    make_app: Callable[..., Flask],
) -> None:
    # The review: responses setting __Host-csrf had no Cache-Control, so a shared
    # cache could hand one visitor's double-submit cookie to the next.
    app = build_auth_app(make_app)

    @app.get("/public")
    def public() -> Any:
        response = jsonify(ok=True)
        response.headers["Cache-Control"] = "public, max-age=600"
        response.set_cookie("theme", "dark")
        return response

    browser = Browser(app)
    reply = browser.get("/api/csrf")
    assert "__Host-csrf" in reply.headers.get("Set-Cookie", "")
    assert reply.headers["Cache-Control"] == "no-store"
    assert browser.get("/public").headers["Cache-Control"] == "no-store"
    again = browser.get("/api/csrf")  # the cookie is there: nothing set, nothing to keep out
    assert "Set-Cookie" not in again.headers


def test_login_user_without_authenticate_reads_the_user_after_the_stamp(
    make_app: Callable[..., Flask],
) -> None:
    # The review: an application that checks credentials itself and calls
    # login_user with a user it read earlier loses the race guarantee.
    app = build_auth_app(make_app)
    state = CoatCheck.state(app)
    stale = state.users.create_user("mallory", state.hasher.hash(PASSWORD), roles=("admin",))

    @app.post("/sso")
    @csrf_exempt
    def sso() -> Any:
        login_user(stale)  # read before the disable below
        return jsonify(ok=True)

    state.users.set_disabled(stale.id, True)
    client = Browser(app)
    assert client.post("/sso").status_code == 401
    assert client.get("/api/me").status_code == 401
