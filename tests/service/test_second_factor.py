"""SPEC §8 over the JSON API: TOTP, recovery codes, two-step login, step-up, policy, admin.

Each test runs on the session stores and user databases of a deployment:
SQLite for both, Redis for sessions, PostgreSQL for users. Time is the
injectable clock: TOTP steps, the pending login's five minutes and the
step-up window move with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest
from flask import Flask
from sqlalchemy import text

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock

from ..conftest import store_url
from ..ext.auth_app import Browser
from ..users.test_user_store import pg_admin, pg_url  # noqa: F401 (fixtures)
from .conftest import PASSWORD, add_user
from .test_tokens import api, timed

SESSION_COOKIE = "__Host-session"


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def app(
    request: pytest.FixtureRequest,
    make_service: Callable[..., Flask],
    clock: ManualClock,
    tmp_path: Path,
) -> Iterator[Flask]:
    config: dict[str, Any] = {}
    if request.param == "sqlite":
        config["COATCHECK_STORE_URL"] = store_url("sqlite", request, tmp_path)
    elif request.param == "redis":
        config["COATCHECK_STORE_URL"] = store_url("redis", request, tmp_path)
    else:
        config["COATCHECK_DATABASE_URL"] = request.getfixturevalue("pg_url")
    app = timed(make_service(**config), clock)
    yield app
    CoatCheck.state(app).close()  # PostgreSQL: no connection left open for the schema's drop


class TotpBrowser(Browser):
    """A browser whose user has an authenticator app."""

    secret = ""

    def enrol(self, clock: ManualClock, name: str = "Phone") -> dict[str, Any]:
        begun = self.post("/api/2fa/totp", {"name": name})
        assert begun.status_code == 200, begun.json
        self.secret = begun.json["secret"]  # type: ignore[index]
        confirmed = self.post(
            f"/api/2fa/totp/{begun.json['id']}/confirm",  # type: ignore[index]
            {"code": self.code(clock)},
        )
        assert confirmed.status_code == 200, confirmed.json
        body: dict[str, Any] = confirmed.json  # type: ignore[assignment]
        return body

    def code(self, clock: ManualClock, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(clock() + steps * 30)

    def second(self, method: str, code: str) -> Any:
        answer = self.post("/api/login/second-factor", {"method": method, "code": code})
        if answer.status_code == 200:
            self.token = answer.json["csrf_token"]  # the login made a new CSRF secret
        return answer


def enrolled(app: Flask, clock: ManualClock, name: str = "alice", *roles: str) -> TotpBrowser:
    """Return a logged-in browser of ``name``, who has a TOTP factor and recovery codes."""
    if CoatCheck.state(app).users.get_by_username(name) is None:
        add_user(app, name, *roles)
    browser = TotpBrowser(app)
    assert browser.login(name, PASSWORD).status_code == 200
    browser.codes = browser.enrol(clock)["recovery_codes"]  # type: ignore[attr-defined]
    clock.advance(30)  # the confirming code's step is spent
    return browser


def fresh(app: Flask, secret: str) -> TotpBrowser:
    browser = TotpBrowser(app)
    browser.secret = secret
    return browser


def test_enrolment_shows_the_secret_uri_and_qr_and_counts_only_once_confirmed(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "alice")
    browser = TotpBrowser(app)
    browser.login("alice", PASSWORD)
    begun = browser.post("/api/2fa/totp", {"name": "Phone"})
    assert begun.status_code == 200
    body = begun.json
    assert body["otpauth_uri"].startswith("otpauth://totp/")  # type: ignore[index]
    assert f"secret={body['secret']}" in body["otpauth_uri"]  # type: ignore[index]
    assert body["qr_svg"].startswith("<svg")  # type: ignore[index]
    assert begun.headers["Cache-Control"] == "no-store"
    listed = browser.get("/api/2fa").json
    assert listed == {"factors": [], "recovery_codes_left": 0}  # not until confirmed
    wrong = browser.post(f"/api/2fa/totp/{body['id']}/confirm", {"code": "000000"})  # type: ignore[index]
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_code")  # type: ignore[index]
    browser.secret = body["secret"]  # type: ignore[index]
    confirmed = browser.post(
        f"/api/2fa/totp/{body['id']}/confirm",  # type: ignore[index]
        {"code": browser.code(clock)},
    )
    assert confirmed.status_code == 200
    codes = confirmed.json["recovery_codes"]  # type: ignore[index]
    assert len(codes) == 10 and len(set(codes)) == 10
    [factor] = browser.get("/api/2fa").json["factors"]  # type: ignore[index]
    assert (factor["type"], factor["name"], factor["passkey"]) == ("totp", "Phone", False)
    assert set(factor) == {"id", "type", "name", "passkey", "created_at", "last_used_at"}
    assert browser.get("/api/2fa").json["recovery_codes_left"] == 10  # type: ignore[index]


def test_the_secret_is_sealed_at_rest(app: Flask, clock: ManualClock) -> None:
    browser = enrolled(app, clock)
    users = CoatCheck.state(app).users
    with users.engine.connect() as connection:
        [stored] = connection.execute(text("SELECT secret FROM coatcheck_factors")).scalars()
        hashes = set(
            connection.execute(text("SELECT code_hash FROM coatcheck_recovery_codes")).scalars()
        )
    assert browser.secret not in stored
    assert len(hashes) == 10
    assert not {c.replace("-", "") for c in browser.codes} & hashes  # type: ignore[attr-defined]


def test_login_asks_for_the_second_factor_and_the_pending_session_reaches_nothing(
    app: Flask, clock: ManualClock
) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.csrf()
    before = browser.cookie(SESSION_COOKIE)
    first = browser.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert first.status_code == 200
    assert first.json["second_factor_required"] is True  # type: ignore[index]
    assert first.json["methods"] == ["totp", "recovery"]  # type: ignore[index]
    assert "user" not in first.json  # type: ignore[operator]
    pending = browser.cookie(SESSION_COOKIE)
    assert pending is not None and pending != before
    for path in ("/api/me", "/api/sessions", "/api/2fa"):
        refused = browser.get(path)
        assert (refused.status_code, refused.json["error"]) == (401, "second_factor_required")  # type: ignore[index]
    done = browser.second("totp", browser.code(clock))
    assert done.status_code == 200
    assert done.json["user"]["username"] == "alice"  # type: ignore[index]
    assert browser.cookie(SESSION_COOKIE) not in (None, pending)  # a new ID after the step
    session = browser.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["pwd", "otp"])


def test_a_code_is_accepted_once_within_one_step_either_side(
    app: Flask, clock: ManualClock
) -> None:
    secret = enrolled(app, clock).secret
    clock.advance(30)  # past the step after the confirming one
    first = fresh(app, secret)
    first.login("alice", PASSWORD)
    code = first.code(clock, -1)  # the previous step still counts
    assert first.second("totp", code).status_code == 200
    again = fresh(app, secret)
    again.login("alice", PASSWORD)
    replayed = again.second("totp", code)
    assert (replayed.status_code, replayed.json["error"]) == (401, "invalid_code")  # type: ignore[index]
    assert again.second("totp", again.code(clock, 2)).status_code == 401  # two steps ahead
    assert again.second("totp", again.code(clock, 1)).status_code == 200  # the next step


def test_recovery_codes_are_single_use_and_counted(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)
    code = owner.codes[0]  # type: ignore[attr-defined]
    browser = fresh(app, owner.secret)
    browser.login("alice", PASSWORD)
    assert browser.second("recovery", code.upper().replace("-", " ")).status_code == 200
    session = browser.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["pwd", "recovery"])
    assert browser.get("/api/2fa").json["recovery_codes_left"] == 9  # type: ignore[index]
    again = fresh(app, owner.secret)
    again.login("alice", PASSWORD)
    assert again.second("recovery", code).status_code == 401
    events = [e.event for e in CoatCheck.state(app).users.list_events(limit=50)]
    assert "recovery_code_used" in events and "second_factor_failed" in events


def test_new_recovery_codes_kill_the_old_set(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)
    renewed = owner.post("/api/2fa/recovery-codes")
    assert renewed.status_code == 200
    new_codes = renewed.json["recovery_codes"]  # type: ignore[index]
    assert len(new_codes) == 10 and not set(new_codes) & set(owner.codes)  # type: ignore[attr-defined]
    browser = fresh(app, owner.secret)
    browser.login("alice", PASSWORD)
    assert browser.second("recovery", owner.codes[0]).status_code == 401  # type: ignore[attr-defined]
    assert browser.second("recovery", new_codes[0]).status_code == 200


def test_wrong_codes_count_against_the_account_like_wrong_passwords(
    app: Flask, clock: ManualClock
) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.login("alice", PASSWORD)
    answers = [browser.second("totp", "123456").status_code for _ in range(6)]
    assert answers[:5] == [401] * 5
    assert answers[5] == 429
    assert browser.second("totp", browser.code(clock)).status_code == 429  # right code, too late


def test_the_pending_login_lives_five_minutes(app: Flask, clock: ManualClock) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.login("alice", PASSWORD)
    clock.advance(301)
    late = browser.second("totp", browser.code(clock))
    assert (late.status_code, late.json["error"]) == (401, "unauthenticated")  # type: ignore[index]


def test_malformed_second_steps_are_400_and_write_nothing(app: Flask, clock: ManualClock) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.login("alice", PASSWORD)
    for body in (
        {"method": "sms", "code": "123456"},
        {"method": "totp"},
        {"method": "totp", "code": 123456},
        {"method": "totp", "code": "1" * 65},
        {"method": "webauthn", "credential": "not an object"},
        [],
    ):
        answer = browser.post("/api/login/second-factor", body)
        assert (answer.status_code, answer.json["error"]) == (400, "invalid"), body  # type: ignore[index]
    assert browser.second("totp", "12345a").status_code == 401  # well-formed, wrong
    assert browser.second("totp", browser.code(clock)).status_code == 200


def test_no_second_step_without_a_pending_login(app: Flask, clock: ManualClock) -> None:
    browser = TotpBrowser(app)
    browser.csrf()
    answer = browser.second("totp", "123456")
    assert (answer.status_code, answer.json["error"]) == (401, "unauthenticated")  # type: ignore[index]


def test_remember_me_is_issued_only_when_the_login_completes(
    app: Flask, clock: ManualClock
) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.login("alice", PASSWORD, remember=True)
    assert browser.cookie("__Host-remember") is None
    assert browser.second("totp", browser.code(clock)).status_code == 200
    remember = browser.cookie("__Host-remember")
    assert remember is not None
    clock.advance(3 * 86400)
    later = TotpBrowser(app)
    later.client.set_cookie("__Host-remember", remember, domain="localhost")
    session = later.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["pwd", "otp"])


def test_tokens_for_a_user_with_a_factor_need_the_code(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)
    client = api(app)
    without = client.post("/api/token", json={"username": "alice", "password": PASSWORD})
    assert (without.status_code, without.json["error"]) == (401, "second_factor_required")  # type: ignore[index]
    wrong = client.post(
        "/api/token", json={"username": "alice", "password": PASSWORD, "code": "000000"}
    )
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_code")  # type: ignore[index]
    right = client.post(
        "/api/token", json={"username": "alice", "password": PASSWORD, "code": owner.code(clock)}
    )
    assert right.status_code == 200
    claims = jwt.decode(right.json["access_token"], options={"verify_signature": False})  # type: ignore[index]
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp"], "aal2")


def test_sensitive_actions_need_a_recent_check_and_reauth_renews_it(
    app: Flask, clock: ManualClock
) -> None:
    owner = enrolled(app, clock)
    [factor] = owner.get("/api/2fa").json["factors"]  # type: ignore[index]
    clock.advance(601)
    for method, path in (
        ("delete", f"/api/2fa/{factor['id']}"),
        ("post", "/api/2fa/totp"),
        ("post", "/api/2fa/recovery-codes"),
        ("delete", "/api/sessions"),
    ):
        answer = getattr(owner.client, method)(path, json={}, headers=owner.headers())
        assert (answer.status_code, answer.json["error"]) == (401, "reauthentication_required")
    before = owner.cookie(SESSION_COOKIE)
    wrong = owner.post("/api/reauth", {"password": "wrong password"})
    assert wrong.status_code == 401
    renewed = owner.post("/api/reauth", {"password": PASSWORD})
    assert renewed.status_code == 204
    assert owner.cookie(SESSION_COOKIE) not in (None, before)  # a new ID
    session = owner.get("/api/me").json["session"]  # type: ignore[index]
    assert session["amr"] == ["pwd"] and session["aal"] == 1
    assert (
        owner.client.delete(f"/api/2fa/{factor['id']}", headers=owner.headers()).status_code == 204
    )
    assert owner.get("/api/2fa").json == {"factors": [], "recovery_codes_left": 0}


def test_reauth_with_a_code_raises_the_assurance(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)  # logged in by password before enrolling: aal 1
    clock.advance(601)
    assert owner.post("/api/reauth", {"method": "totp", "code": "000000"}).status_code == 401
    assert (
        owner.post("/api/reauth", {"method": "totp", "code": owner.code(clock)}).status_code == 204
    )
    session = owner.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["pwd", "otp"])
    assert owner.post("/api/reauth", {"method": "sms", "code": "1"}).status_code == 400


def test_rename_and_remove_factors(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)
    [factor] = owner.get("/api/2fa").json["factors"]  # type: ignore[index]
    renamed = owner.client.patch(
        f"/api/2fa/{factor['id']}", json={"name": "  Work phone "}, headers=owner.headers()
    )
    assert renamed.status_code == 200 and renamed.json["factor"]["name"] == "Work phone"  # type: ignore[index]
    bad = owner.client.patch(
        f"/api/2fa/{factor['id']}", json={"name": "x" * 65}, headers=owner.headers()
    )
    assert bad.status_code == 400
    missing = owner.client.patch("/api/2fa/999999", json={"name": "a"}, headers=owner.headers())
    assert missing.status_code == 404
    assert owner.client.delete("/api/2fa/999999", headers=owner.headers()).status_code == 404
    assert (
        owner.client.delete(f"/api/2fa/{factor['id']}", headers=owner.headers()).status_code == 204
    )
    # The last factor took the recovery codes with it: the next login is by password alone.
    browser = TotpBrowser(app)
    assert "user" in browser.login("alice", PASSWORD).json  # type: ignore[operator]


def test_another_users_factor_cannot_be_touched(app: Flask, clock: ManualClock) -> None:
    alice = enrolled(app, clock)
    [factor] = alice.get("/api/2fa").json["factors"]  # type: ignore[index]
    add_user(app, "bob")
    bob = TotpBrowser(app)
    bob.login("bob", PASSWORD)
    assert bob.client.delete(f"/api/2fa/{factor['id']}", headers=bob.headers()).status_code == 404
    renamed = bob.client.patch(
        f"/api/2fa/{factor['id']}", json={"name": "x"}, headers=bob.headers()
    )
    assert renamed.status_code == 404
    assert len(alice.get("/api/2fa").json["factors"]) == 1  # type: ignore[index]


def test_the_policy_sends_a_user_without_a_factor_to_enrolment(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    app = timed(make_service(COATCHECK_REQUIRE_SECOND_FACTOR="admin"), clock)
    add_user(app, "root", "admin")
    add_user(app, "bob")
    assert "user" in TotpBrowser(app).login("bob", PASSWORD).json  # type: ignore[operator]
    browser = TotpBrowser(app)
    first = browser.login("root", PASSWORD)
    assert first.json["second_factor_enrolment_required"] is True  # type: ignore[index]
    refused = browser.get("/api/me")
    assert (refused.status_code, refused.json["error"]) == (  # type: ignore[index]
        401,
        "second_factor_enrolment_required",
    )
    assert browser.get("/api/2fa").status_code == 200  # enrolment is reachable
    confirmed = browser.enrol(clock)
    assert len(confirmed["recovery_codes"]) == 10
    session = browser.get("/api/me").json["session"]  # type: ignore[index]
    assert (session["aal"], session["amr"]) == (2, ["pwd", "otp"])


def test_an_admin_resets_a_users_factors_and_ends_their_sessions(
    app: Flask, clock: ManualClock
) -> None:
    alice = enrolled(app, clock)
    alice_id = CoatCheck.state(app).users.get_by_username("alice").id  # type: ignore[union-attr]
    add_user(app, "root", "admin")
    admin = TotpBrowser(app)
    admin.login("root", PASSWORD)
    users = admin.get("/api/admin/users").json["users"]  # type: ignore[index]
    assert {u["username"]: u["factors"] for u in users} == {"alice": ["totp"], "root": []}
    assert (
        admin.client.delete("/api/admin/users/999999/2fa", headers=admin.headers()).status_code
        == 404
    )
    reset = admin.client.delete(f"/api/admin/users/{alice_id}/2fa", headers=admin.headers())
    assert reset.status_code == 204
    assert alice.get("/api/me").status_code == 401  # her sessions ended
    assert "user" in TotpBrowser(app).login("alice", PASSWORD).json  # type: ignore[operator]
    [event] = [
        e for e in CoatCheck.state(app).users.list_events(limit=50) if e.event == "factors_reset"
    ]
    assert event.user_id == alice_id and event.detail["factors_removed"] == 1  # type: ignore[index]
    clock.advance(601)
    stale = admin.client.delete(f"/api/admin/users/{alice_id}/2fa", headers=admin.headers())
    assert (stale.status_code, stale.json["error"]) == (401, "reauthentication_required")  # type: ignore[index]


def test_a_revocation_during_the_second_step_wins(app: Flask, clock: ManualClock) -> None:
    secret = enrolled(app, clock).secret
    browser = fresh(app, secret)
    browser.login("alice", PASSWORD)
    alice_id = CoatCheck.state(app).users.get_by_username("alice").id  # type: ignore[union-attr]
    CoatCheck.state(app).devices.revoke_all(alice_id)  # after the password, before the code
    browser.second("totp", browser.code(clock))
    assert browser.get("/api/me").status_code == 401


def test_a_remember_me_cookie_from_before_the_factor_does_not_skip_it(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "alice")
    old = TotpBrowser(app)
    old.login("alice", PASSWORD, remember=True)  # aal 1: no factor yet
    remember = old.cookie("__Host-remember")
    assert remember is not None
    enrolled(app, clock)  # another device adds an authenticator app
    later = TotpBrowser(app)
    later.client.set_cookie("__Host-remember", remember, domain="localhost")
    answer = later.get("/api/me")
    assert answer.status_code == 401
    assert later.cookie("__Host-remember") is None  # cleared


def test_changing_the_password_counts_as_a_step_up(app: Flask, clock: ManualClock) -> None:
    owner = enrolled(app, clock)
    clock.advance(601)
    assert owner.client.delete("/api/sessions", headers=owner.headers()).status_code == 401
    new = {"current_password": PASSWORD, "new_password": "another fine passphrase"}
    assert owner.post("/api/password", new).status_code == 204
    owner.csrf()
    assert owner.client.delete("/api/sessions", headers=owner.headers()).status_code == 204


def test_registration_under_the_policy_for_all_goes_to_enrolment(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    app = timed(make_service(COATCHECK_REQUIRE_SECOND_FACTOR="all"), clock)
    browser = TotpBrowser(app)
    browser.csrf()
    created = browser.post("/api/register", {"username": "carol", "password": PASSWORD})
    assert created.status_code == 201
    assert created.json["second_factor_enrolment_required"] is True  # type: ignore[index]
    assert "user" not in created.json  # type: ignore[operator]
    assert browser.get("/api/me").json["error"] == "second_factor_enrolment_required"  # type: ignore[index]
    browser.enrol(clock)
    assert browser.get("/api/me").json["session"]["aal"] == 2  # type: ignore[index]
