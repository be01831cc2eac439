"""SPEC §8 for an application of its own: two-step login and ``@reauth_required``.

The application calls :func:`coatcheck.start_login` where it called
``login_user`` after a password check, :func:`coatcheck.check_second_factor`
for the second step, and guards sensitive views with ``@reauth_required``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyotp
from flask import Flask, jsonify, request

from coatcheck import (
    CoatCheck,
    authenticate,
    check_second_factor,
    csrf_token,
    current_assurance,
    current_user,
    login_required,
    pending_login,
    reauth_required,
    reauthenticate_with_password,
    recently_authenticated,
    start_login,
)
from coatcheck.core.clock import ManualClock

from .auth_app import PASSWORD, Browser


def build(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()

    @app.get("/api/csrf")
    def api_csrf() -> Any:
        return jsonify(csrf_token=csrf_token())

    @app.post("/api/login")
    def api_login() -> Any:
        body = request.get_json()
        user = authenticate(body["username"], body["password"])
        pending = start_login(user)
        if pending is not None:
            return jsonify(methods=list(pending.allowed), stage=pending.stage)
        return jsonify(user=user.username)

    @app.post("/api/second")
    def api_second() -> Any:
        user = check_second_factor("totp", request.get_json()["code"])
        return jsonify(user=user.username, csrf_token=csrf_token())

    @app.get("/api/pending")
    def api_pending() -> Any:
        pending = pending_login()
        return jsonify(stage=pending.stage if pending else None)

    @app.get("/api/me")
    @login_required
    def api_me() -> Any:
        assurance = current_assurance()
        return jsonify(
            user=current_user.username, aal=assurance.aal, fresh=recently_authenticated()
        )

    @app.post("/api/sudo")
    @reauth_required
    def api_sudo() -> Any:
        return jsonify(done=True)

    @app.post("/api/reauth")
    @login_required
    def api_reauth() -> Any:
        reauthenticate_with_password(request.get_json()["password"])
        return "", 204

    return app


def test_an_application_runs_the_two_steps_and_step_up(
    make_app: Callable[..., Flask], clock: ManualClock
) -> None:
    app = build(make_app)
    state = CoatCheck.state(app)
    alice = state.accounts.create_user("alice", PASSWORD)
    enrolment = state.factors.begin_totp(alice.id, "alice", "Phone")
    totp = pyotp.TOTP(enrolment.secret)
    assert state.factors.confirm_totp(alice.id, enrolment.id, totp.at(clock())) is not None
    clock.advance(30)

    browser = Browser(app)
    browser.csrf()
    first = browser.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert first.json == {"methods": ["totp", "recovery"], "stage": "second_factor"}
    assert browser.get("/api/pending").json == {"stage": "second_factor"}
    refused = browser.get("/api/me")
    assert (refused.status_code, refused.json["error"]) == (401, "second_factor_required")  # type: ignore[index]
    wrong = browser.post("/api/second", {"code": "000000"})
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_code")  # type: ignore[index]
    done = browser.post("/api/second", {"code": totp.at(clock())})
    assert done.json["user"] == "alice"  # type: ignore[index]
    browser.token = done.json["csrf_token"]  # type: ignore[index]
    assert browser.get("/api/me").json == {"user": "alice", "aal": 2, "fresh": True}
    assert browser.post("/api/sudo").status_code == 200

    clock.advance(state.settings.reauth_max_age + 1)
    assert browser.get("/api/me").json["fresh"] is False  # type: ignore[index]
    stale = browser.post("/api/sudo")
    assert (stale.status_code, stale.json["error"]) == (401, "reauthentication_required")  # type: ignore[index]
    assert browser.post("/api/reauth", {"password": PASSWORD}).status_code == 204
    assert browser.post("/api/sudo").status_code == 200


def test_reauth_required_refuses_anonymous_requests_as_login_required_does(
    make_app: Callable[..., Flask],
) -> None:
    app = build(make_app)
    browser = Browser(app)
    browser.csrf()
    answer = browser.post("/api/sudo")
    assert (answer.status_code, answer.json["error"]) == (401, "unauthenticated")  # type: ignore[index]


def test_without_factors_start_login_logs_in_at_once(make_app: Callable[..., Flask]) -> None:
    app = build(make_app)
    CoatCheck.state(app).accounts.create_user("bob", PASSWORD)
    browser = Browser(app)
    browser.csrf()
    assert browser.post("/api/login", {"username": "bob", "password": PASSWORD}).json == {
        "user": "bob"
    }
    assert browser.get("/api/me").json["aal"] == 1  # type: ignore[index]
