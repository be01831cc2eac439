"""SPEC §8, the assurance every session carries: ``aal``, ``amr``, ``authenticated_at``.

A password login is ``aal`` 1 by ``pwd``; a remembered login and a refreshed
token carry on the assurance they were issued at (neither is a new
authentication); access tokens carry ``amr`` and ``acr``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import pytest
from flask import Flask

from coatcheck import CoatCheck, login_user
from coatcheck.auth.assurance import Assurance
from coatcheck.core.clock import ManualClock
from coatcheck.service.pages import methods_filter
from coatcheck.testing import make_record

from ..ext.auth_app import Browser, https_client
from .conftest import PASSWORD, add_user
from .test_tokens import api, bearer, get_tokens, timed


def iso(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def app(make_service: Callable[..., Flask], clock: ManualClock) -> Flask:
    return timed(make_service(), clock)


def test_a_password_login_is_aal_1_by_pwd(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    browser = Browser(app)
    logged_in_at = clock()
    assert browser.login("alice", PASSWORD).status_code == 200
    clock.advance(90)
    session = browser.get("/api/me").json["session"]  # type: ignore[index]
    assert session["aal"] == 1
    assert session["amr"] == ["pwd"]
    assert session["authenticated_at"] == iso(logged_in_at)  # the check, not the last request
    [device] = browser.get("/api/sessions").json["sessions"]  # type: ignore[index]
    assert (device["aal"], device["amr"]) == (1, ["pwd"])
    assert device["authenticated_at"] == iso(logged_in_at)


def test_a_remembered_login_restores_the_assurance_it_was_issued_at(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "alice")
    first = Browser(app)
    issued_at = clock()
    assert first.login("alice", PASSWORD, remember=True).status_code == 200
    remember = first.cookie("__Host-remember")
    assert remember is not None
    clock.advance(3 * 86400)  # the session is long gone; the cookie logs in
    later = https_client(app)
    later.set_cookie("__Host-remember", remember, domain="localhost")
    session = later.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (1, ["pwd"])
    assert session["authenticated_at"] == iso(issued_at)  # not renewed by the cookie


def test_access_tokens_carry_amr_and_acr_through_refreshes(app: Flask, clock: ManualClock) -> None:
    issued_at = clock()
    tokens = get_tokens(app)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["amr"], claims["acr"]) == (["pwd"], "aal1")
    assert claims["auth_time"] == int(issued_at)
    clock.advance(600)
    refreshed = api(app).post("/api/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    claims = jwt.decode(refreshed.json["access_token"], options={"verify_signature": False})  # type: ignore[index]
    assert (claims["amr"], claims["acr"]) == (["pwd"], "aal1")
    assert claims["auth_time"] == int(issued_at)  # a refresh is not an authentication
    me = api(app).get("/api/me", headers=bearer(refreshed.json))  # type: ignore[arg-type]
    session = me.json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (1, ["pwd"])
    assert session["authenticated_at"] == iso(issued_at)


def test_an_application_names_the_methods_it_checked(app: Flask) -> None:
    user_id = add_user(app, "alice")
    user = CoatCheck.state(app).users.get(user_id)

    @app.post("/test/passkey-login")
    def passkey_login() -> str:
        login_user(user, methods=("passkey",))
        return "ok"

    browser = Browser(app)
    browser.csrf()
    assert browser.post("/test/passkey-login").status_code == 200
    session = browser.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["passkey"])


def test_assurance_of_methods() -> None:
    assert Assurance.of(("pwd",), 5.0) == Assurance(1, ("pwd",), 5.0)
    assert Assurance.of(("pwd", "otp", "otp"), 5.0) == Assurance(2, ("pwd", "otp"), 5.0)
    assert Assurance.of(("passkey",), 5.0).acr == "aal2"  # device and user verification
    for second in ("otp", "recovery", "webauthn"):
        assert Assurance.of(("pwd", second), 5.0).aal == 2
        assert Assurance.of((second,), 5.0).aal == 1  # one factor alone is one factor
    for bad in ((), ("sms",)):
        with pytest.raises(ValueError, match="authentication methods"):
            Assurance.of(bad, 5.0)


def test_a_record_from_before_assurance_reads_as_a_password_login(clock: ManualClock) -> None:
    record = make_record(clock, "1")
    record.meta = {"username": "old"}
    assert Assurance.from_meta(record.meta, record.created_at) == Assurance(
        1, ("pwd",), record.created_at
    )
    assert Assurance.from_meta({"aal": 7, "amr": "pwd", "auth_at": True}, 3.0) == Assurance(
        1, ("pwd",), 3.0
    )
    assert Assurance.from_meta({"aal": True, "amr": ["otp"]}, 3.0).aal == 1
    stored = Assurance.of(("pwd", "otp"), 9.0)
    assert Assurance.from_meta(stored.to_meta(), 1.0) == stored


def test_the_account_pages_say_how_the_login_was_made(app: Flask) -> None:
    add_user(app, "alice")
    browser = Browser(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    account = browser.get("/account").get_data(as_text=True)
    assert "Signed in with</th><td>Password" in account
    assert "One step" in account
    devices = browser.get("/account/sessions").get_data(as_text=True)
    assert '<div class="hint">Password</div>' in devices


def test_methods_read_as_words() -> None:
    assert methods_filter(Assurance.of(("pwd", "otp"), 0)) == "Password and authenticator code"
    assert methods_filter(Assurance.of(("passkey",), 0)) == "Passkey"
    three = Assurance.of(("pwd", "otp", "webauthn"), 0)
    assert methods_filter(three) == "Password, authenticator code and security key"


def test_inspect_shows_the_assurance_of_the_session(app: Flask) -> None:
    add_user(app, "alice")
    browser = Browser(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    browser.get("/api/me")  # the session is stored by now
    report = browser.get("/api/inspect").json
    assert report is not None
    assurance = report["session"]["assurance"]
    assert (assurance["aal"], assurance["amr"]) == (1, ["pwd"])
    page = browser.get("/inspect").get_data(as_text=True)
    assert "Assurance</th><td>level 1" in page
    assert Browser(app).get("/api/inspect").json["session"]["assurance"] is None  # type: ignore[index]
