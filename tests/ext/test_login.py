"""Login, logout, fixation, enumeration parity, rehash, policy, roles, audit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import bcrypt
import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.core.ids import store_key
from coatcheck.core.passwords import PasswordHasher

from .auth_app import PASSWORD, Browser, build_auth_app
from .helpers import count_records, https_client, set_cookies

COOKIE = "__Host-session"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return build_auth_app(make_app)


def users(app: Flask):  # type: ignore[no-untyped-def]
    return CoatCheck.state(app).users


def test_register_logs_in(app: Flask) -> None:
    browser = Browser(app)
    response = browser.register("alice")
    assert response.status_code == 201
    # The ID keeps its type end to end: the user store's int, not the text "1".
    assert browser.get("/api/me").json == {"user": {"id": 1, "username": "alice", "roles": []}}


def test_login_and_logout(app: Flask) -> None:
    Browser(app).register("alice")
    browser = Browser(app)
    response = browser.login("alice")
    assert response.status_code == 200
    assert browser.get("/api/me").status_code == 200
    sid = browser.cookie(COOKIE)
    assert sid is not None
    response = browser.post("/api/logout")
    assert response.status_code == 204
    [cleared] = [c for c in set_cookies(response) if c.name == COOKIE]
    assert cleared.attributes["max-age"] == "0"
    assert CoatCheck.state(app).store.get(store_key(sid)) is None
    assert browser.get("/api/me").status_code == 401


def test_login_kills_the_pre_login_session_id(app: Flask) -> None:
    Browser(app).register("alice")
    browser = Browser(app)
    browser.csrf()
    browser.post("/change")  # the anonymous visitor now has a session record
    before = browser.cookie(COOKIE)
    assert before is not None
    browser.login("alice")
    after = browser.cookie(COOKIE)
    assert after is not None and after != before
    assert CoatCheck.state(app).store.get(store_key(before)) is None
    attacker = https_client(app)  # who planted or stole the pre-login ID
    attacker.set_cookie(COOKIE, before, domain="localhost")
    assert attacker.get("/api/me").status_code == 401


def test_unknown_user_and_wrong_password_answer_alike(app: Flask) -> None:
    Browser(app).register("alice")
    wrong = Browser(app).login("alice", "not the password at all")
    unknown = Browser(app).login("nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json
        == unknown.json
        == {
            "error": "invalid_credentials",
            "message": "Wrong username or password.",
        }
    )
    assert wrong.headers.get("Set-Cookie") is None or "session" not in wrong.headers["Set-Cookie"]


class CountingHasher(PasswordHasher):
    """The fast hasher, counting the hashing work done."""

    def __init__(self) -> None:
        fast = PasswordHasher.fast_for_tests()
        self.__dict__.update(fast.__dict__)
        self.calls: list[str] = []

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self.calls.append("verify")
        return super().verify(password, password_hash)

    def dummy_verify(self, password: str) -> None:
        self.calls.append("dummy_verify")
        super().dummy_verify(password)


def test_unknown_user_costs_a_hash_too(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    hasher = CountingHasher()
    CoatCheck.state(app).hasher = hasher
    Browser(app).register("alice")
    hasher.calls.clear()
    Browser(app).login("alice", "wrong password here")
    Browser(app).login("nobody-at-all", "wrong password here")
    assert hasher.calls == ["verify", "dummy_verify"]


def test_disabled_user_cannot_log_in_and_loses_sessions(app: Flask) -> None:
    from coatcheck import disable_user

    browser = Browser(app)
    browser.register("alice")
    with app.test_request_context():
        disable_user(1)
    assert browser.get("/api/me").status_code == 401
    assert Browser(app).login("alice").status_code == 401


def test_bcrypt_hash_is_rehashed_on_login(app: Flask) -> None:
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    users(app).create_user("legacy", legacy)
    assert Browser(app).login("legacy").status_code == 200
    user = users(app).get_by_username("legacy")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert Browser(app).login("legacy").status_code == 200  # the new hash works


@pytest.mark.parametrize(
    ("username", "password", "status", "error"),
    [
        ("bob", "short", 400, "weak_password"),
        ("bob", "x" * 257, 400, "weak_password"),
        ("bob", "password1234", 400, "weak_password"),
        ("bob-the-builder", "bob-the-builder", 400, "weak_password"),
        ("no spaces allowed", PASSWORD, 400, "invalid"),
        ("alice", PASSWORD, 409, "username_taken"),
        ("ALICE", PASSWORD, 409, "username_taken"),
    ],
)
def test_registration_refusals(
    app: Flask, username: str, password: str, status: int, error: str
) -> None:
    Browser(app).register("alice")
    browser = Browser(app)
    response = browser.register(username, password)
    assert response.status_code == status
    assert response.json is not None and response.json["error"] == error
    assert password not in response.text
    assert users(app).count_users() == 1


def test_login_required_answers_by_client(make_app: Callable[..., Flask]) -> None:
    plain = build_auth_app(make_app)
    assert https_client(plain).get("/api/me").json == {
        "error": "unauthenticated",
        "message": "Log in to see this.",
    }
    page = https_client(plain).get("/account", headers={"Accept": "text/html"})
    assert page.status_code == 401 and page.mimetype == "text/html"


def test_login_required_redirects_browsers_to_the_login_page(
    make_app: Callable[..., Flask],
) -> None:
    app = build_auth_app(make_app, COATCHECK_LOGIN_URL="/login")
    response = https_client(app).get("/account?tab=1", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Faccount%3Ftab%3D1"
    api = https_client(app).get("/account", headers={"Accept": "application/json"})
    assert api.status_code == 401


def test_roles_required(app: Flask) -> None:
    users(app).create_user("root", PasswordHasher.fast_for_tests().hash(PASSWORD), roles=("admin",))
    Browser(app).register("alice")
    alice, root = Browser(app), Browser(app)
    alice.login("alice")
    root.login("root")
    denied = alice.get("/admin", headers={"Accept": "application/json"})
    assert denied.status_code == 403 and denied.json == {
        "error": "forbidden",
        "message": "You are not allowed to do this.",
    }
    assert root.get("/admin").text == "admin area"
    assert (
        https_client(app).get("/admin", headers={"Accept": "application/json"}).status_code == 401
    )


def test_change_password_rotates_and_revokes_the_others(app: Flask) -> None:
    browser, other = Browser(app), Browser(app)
    browser.register("alice")
    other.login("alice")
    before = browser.cookie(COOKIE)
    new = "a completely new passphrase"
    response = browser.post("/api/password", {"current_password": PASSWORD, "new_password": new})
    assert response.status_code == 204
    assert browser.cookie(COOKIE) != before
    assert browser.get("/api/me").status_code == 200
    assert other.get("/api/me").status_code == 401
    assert Browser(app).login("alice", PASSWORD).status_code == 401
    assert Browser(app).login("alice", new).status_code == 200


def test_change_password_checks_current_and_policy(app: Flask) -> None:
    browser = Browser(app)
    browser.register("alice")
    wrong = browser.post(
        "/api/password",
        {"current_password": "not it at all", "new_password": "fine new passphrase"},
    )
    assert wrong.status_code == 401
    weak = browser.post("/api/password", {"current_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 400 and weak.json is not None
    assert weak.json["error"] == "weak_password"


def test_audit_events_carry_context_and_no_secrets(app: Flask) -> None:
    browser = Browser(app)
    browser.register("alice")
    Browser(app).login("alice", "a wrong password here")
    browser.post("/api/logout")
    events = users(app).list_events(limit=10)
    names = [e.event for e in events]
    assert names[:4] == ["logout", "login_failed", "login_succeeded", "user_created"]
    for event in events:
        assert event.ip == "127.0.0.1"
        assert event.user_agent is not None
        dumped = json.dumps(dataclasses.asdict(event), default=str)
        assert PASSWORD not in dumped and "a wrong password here" not in dumped
    login = events[2]
    assert login.session_handle is not None and len(login.session_handle) == 32
    assert login.user_id == 1 and login.username == "alice"


def test_no_record_is_made_by_anonymous_login_pages(app: Flask) -> None:
    client = https_client(app)
    for _ in range(50):
        client.get("/api/csrf")
        client.get("/form")
    assert count_records(CoatCheck.state(app).store) == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/account?tab=2", "/account?tab=2"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=y", "/"),
    ],
)
def test_next_is_followed_only_when_safe(app: Flask, target: str, expected: str) -> None:
    assert https_client(app).get("/go", query_string={"next": target}).text == expected


@pytest.mark.parametrize(("proxies", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_client_address_trusts_x_forwarded_for_only_when_configured(
    make_app: Callable[..., Flask], proxies: int, expected: str
) -> None:
    app = build_auth_app(make_app, COATCHECK_TRUSTED_PROXIES=proxies)
    browser = Browser(app)
    browser.csrf()
    browser.post(
        "/api/register",
        {"username": "alice", "password": PASSWORD},
        **{"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
    )
    [event, *_] = users(app).list_events(limit=1)
    assert event.ip == expected
