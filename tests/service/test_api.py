"""Every row of the SPEC's JSON API table, with its error statuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, Response

from coatcheck import CoatCheck
from coatcheck.ext.cookies import vary_on

from ..ext.auth_app import Browser
from ..ext.helpers import https_client, set_cookies
from .conftest import PASSWORD, add_user

SESSION = "__Host-session"


def error_of(response) -> str:  # type: ignore[no-untyped-def]
    assert set(response.json) == {"error", "message"}, response.json
    return str(response.json["error"])


def logged_in(app: Flask, name: str, *roles: str) -> Browser:
    add_user(app, name, *roles)
    browser = Browser(app)
    assert browser.login(name, PASSWORD).status_code == 200
    return browser


def test_csrf(service: Flask) -> None:
    response = https_client(service).get("/api/csrf")
    assert response.status_code == 200 and set(response.json) == {"csrf_token"}  # type: ignore[arg-type]


def test_register(service: Flask) -> None:
    browser = Browser(service)
    response = browser.register("alice")
    assert response.status_code == 201
    assert response.json["user"] == {"id": 1, "username": "alice", "roles": []}  # type: ignore[index]
    assert SESSION in {c.name for c in set_cookies(response)}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"username": "bob", "password": "short"}, 400, "weak_password"),
        ({"username": "b b", "password": PASSWORD}, 400, "invalid"),
        ({"username": "bob"}, 400, "invalid"),
        ({"username": "bob", "password": 12345678901234}, 400, "invalid"),
        ({"username": "bob", "password": PASSWORD, "email": "not-an-email"}, 400, "invalid"),
        ([1, 2, 3], 400, "invalid"),
        ({"username": "alice", "password": PASSWORD}, 409, "username_taken"),
    ],
)
def test_register_errors(service: Flask, body: object, status: int, error: str) -> None:
    add_user(service, "alice")
    browser = Browser(service)
    browser.csrf()
    response = browser.post("/api/register", body)
    assert response.status_code == status and error_of(response) == error


def test_register_needs_a_json_body(service: Flask) -> None:
    browser = Browser(service)
    browser.csrf()
    response = browser.client.post(
        "/api/register", data="username=x", headers=browser.headers(), content_type="text/plain"
    )
    assert response.status_code == 400 and error_of(response) == "invalid"


def test_login(service: Flask) -> None:
    add_user(service, "alice")
    browser = Browser(service)
    browser.csrf()
    response = browser.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json["user"] == {"id": 1, "username": "alice", "roles": []}  # type: ignore[index]
    assert SESSION in {c.name for c in set_cookies(response)}


def test_login_errors(service: Flask) -> None:
    add_user(service, "alice")
    for _ in range(5):
        response = Browser(service).login("alice", "wrong password here")
        assert response.status_code == 401 and error_of(response) == "invalid_credentials"
    throttled = Browser(service).login("alice")
    assert throttled.status_code == 429 and error_of(throttled) == "throttled"
    assert int(throttled.headers["Retry-After"]) > 0
    bad = Browser(service)
    bad.csrf()
    assert (
        bad.post(
            "/api/login", {"username": "alice", "remember": "yes", "password": "x"}
        ).status_code
        == 400
    )


def test_logout(service: Flask) -> None:
    browser = logged_in(service, "alice")
    response = browser.post("/api/logout")
    assert response.status_code == 204
    [cleared] = [c for c in set_cookies(response) if c.name == SESSION]
    assert cleared.attributes["max-age"] == "0"
    assert browser.get("/api/me").status_code == 401


def test_me(service: Flask) -> None:
    assert error_of(https_client(service).get("/api/me")) == "unauthenticated"
    browser = logged_in(service, "alice")
    body = browser.get("/api/me").json
    assert body is not None
    assert body["user"] == {
        "id": 1,
        "username": "alice",
        "roles": [],
        "email": None,
        "email_verified": False,
    }
    assert set(body["session"]) == {
        "handle",
        "created_at",
        "last_seen_at",
        "expires_at",
        "aal",
        "amr",
        "authenticated_at",
    }
    assert len(body["session"]["handle"]) == 32


def test_sessions_list_and_revoke(service: Flask) -> None:
    browser = logged_in(service, "alice")
    other = Browser(service)
    other.login("alice", PASSWORD)
    listed = browser.get("/api/sessions").json["sessions"]  # type: ignore[index]
    assert len(listed) == 2
    for item in listed:
        assert {"handle", "created_at", "last_seen_at", "ip", "user_agent", "current"} <= set(item)
    [mine] = [s for s in listed if s["current"]]
    [theirs] = [s for s in listed if not s["current"]]
    bob = logged_in(service, "bobby")
    assert (
        bob.client.delete(f"/api/sessions/{theirs['handle']}", headers=bob.headers()).status_code
        == 404
    )
    assert (
        browser.client.delete("/api/sessions/" + "0" * 32, headers=browser.headers()).status_code
        == 404
    )
    response = browser.client.delete(f"/api/sessions/{theirs['handle']}", headers=browser.headers())
    assert response.status_code == 204
    assert other.get("/api/me").status_code == 401
    assert browser.get("/api/me").json["session"]["handle"] == mine["handle"]  # type: ignore[index]


def test_revoke_all_others(service: Flask) -> None:
    browser = logged_in(service, "alice")
    others = [Browser(service) for _ in range(3)]
    for other in others:
        other.login("alice", PASSWORD)
    response = browser.client.delete("/api/sessions", headers=browser.headers())
    assert response.status_code == 204
    assert all(o.get("/api/me").status_code == 401 for o in others)
    assert browser.get("/api/me").status_code == 200


def test_password(service: Flask) -> None:
    browser = logged_in(service, "alice")
    other = Browser(service)
    other.login("alice", PASSWORD)
    before = browser.cookie(SESSION)
    response = browser.post(
        "/api/password", {"current_password": PASSWORD, "new_password": "another fine passphrase"}
    )
    assert response.status_code == 204
    assert browser.cookie(SESSION) != before
    assert other.get("/api/me").status_code == 401
    browser.csrf()
    wrong = browser.post(
        "/api/password", {"current_password": "nope nope nope", "new_password": "x" * 20}
    )
    assert wrong.status_code == 401
    weak = browser.post(
        "/api/password", {"current_password": "another fine passphrase", "new_password": "short"}
    )
    assert weak.status_code == 400 and error_of(weak) == "weak_password"


def test_admin_users(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    alice = logged_in(service, "alice")
    listed = admin.get("/api/admin/users").json
    assert listed is not None and listed["total"] == 2
    assert {u["username"] for u in listed["users"]} == {"root", "alice"}
    assert {"id", "username", "roles", "email", "created_at", "disabled"} <= set(listed["users"][0])
    assert error_of(alice.get("/api/admin/users")) == "forbidden"
    assert alice.get("/api/admin/users").status_code == 403
    assert https_client(service).get("/api/admin/users").status_code == 401
    assert admin.get("/api/admin/users?limit=0").status_code == 400
    assert admin.get("/api/admin/users?offset=x").status_code == 400
    huge = "99999999999999999999999"
    assert admin.get(f"/api/admin/users?offset={huge}").status_code == 400
    assert admin.get(f"/api/admin/audit?offset={huge}").status_code == 400


def test_admin_roles(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    alice = logged_in(service, "alice")
    response = admin.post("/api/admin/users/2/roles", {"roles": ["editor"]})
    assert response.status_code == 200
    assert response.json["user"]["roles"] == ["editor"]  # type: ignore[index]
    # Alice's live session sees the new role at her next request, with no SQL.
    assert alice.get("/api/me").json["user"]["roles"] == ["editor"]  # type: ignore[index]
    assert admin.post("/api/admin/users/2/roles", {"roles": "editor"}).status_code == 400
    assert admin.post("/api/admin/users/2/roles", {"roles": ["Bad Role!"]}).status_code == 400
    assert admin.post("/api/admin/users/99/roles", {"roles": []}).status_code == 404
    assert alice.post("/api/admin/users/2/roles", {"roles": ["admin"]}).status_code == 403


def test_admin_logs_a_user_out_everywhere(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    alice = logged_in(service, "alice")
    response = admin.client.delete("/api/admin/users/2/sessions", headers=admin.headers())
    assert response.status_code == 204
    assert alice.get("/api/me").status_code == 401
    assert (
        admin.client.delete("/api/admin/users/99/sessions", headers=admin.headers()).status_code
        == 404
    )


def test_admin_audit(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    Browser(service).login("root", "wrong password here")
    page = admin.get("/api/admin/audit?limit=1").json
    assert page is not None and page["limit"] == 1 and page["total"] >= 2
    [newest] = page["events"]
    assert newest["event"] == "login_failed"
    second = admin.get("/api/admin/audit?limit=1&offset=1").json["events"][0]  # type: ignore[index]
    assert second["event"] == "login_succeeded" and second["session_handle"]
    assert logged_in(service, "alice").get("/api/admin/audit").status_code == 403


def test_forward_auth(service: Flask) -> None:
    anonymous = https_client(service).get("/auth/verify")
    assert anonymous.status_code == 401
    browser = logged_in(service, "root", "admin", "ops")
    response = browser.get("/auth/verify")
    assert response.status_code == 200
    assert response.headers["X-Auth-User"] == "root"
    assert response.headers["X-Auth-User-Id"] == "1"
    assert response.headers["X-Auth-Roles"] == "admin,ops"


def test_health(service: Flask) -> None:
    client = https_client(service)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {
        "status": "ready",
        "checks": {"sessions": "ok", "users": "ok"},
    }


def test_readyz_is_503_when_a_store_is_down(
    make_service: Callable[..., Flask], private_redis
) -> None:  # type: ignore[no-untyped-def]
    app = make_service(COATCHECK_STORE_URL=private_redis.url)
    private_redis.stop()
    response = https_client(app).get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["sessions"] == "unavailable"  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nothing-here", 404),
        ("PUT", "/api/me", 405),
        ("GET", "/api/admin/users/x/roles", 404),
    ],
)
def test_http_errors_have_the_error_shape(
    service: Flask, method: str, path: str, status: int
) -> None:
    browser = Browser(service)
    browser.csrf()
    response = browser.client.open(path, method=method, headers=browser.headers())
    assert response.status_code == status
    error_of(response)


def test_huge_json_is_refused_with_413(service: Flask) -> None:
    browser = Browser(service)
    browser.csrf()
    response = browser.post("/api/login", {"username": "a", "password": "x" * 200_000})
    assert response.status_code == 413
    error_of(response)


def test_security_headers(service: Flask) -> None:
    response = https_client(service).get("/api/csrf")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers_on_every_answer_once(make_service: Callable[..., Flask]) -> None:
    behind_proxy = make_service(COATCHECK_TRUSTED_PROXIES=1)

    @behind_proxy.get("/framed")
    def framed() -> Response:
        response = Response("ok")
        response.headers["X-Frame-Options"] = "SAMEORIGIN"  # the view's own choice stands
        return response

    plain = behind_proxy.test_client()
    for path in ("/api/csrf", "/no-such-page", "/framed"):
        response = plain.get(path)
        assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"], path
        assert len(response.headers.getlist("Content-Security-Policy")) == 1, path
        assert "Strict-Transport-Security" not in response.headers, path  # plain HTTP
    assert plain.get("/framed").headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert plain.get("/no-such-page").status_code == 404
    proxied = plain.get("/api/csrf", headers={"X-Forwarded-Proto": "https"})
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")


def test_vary_keeps_what_is_there() -> None:
    response = Response()
    vary_on(response, "Cookie")
    vary_on(response, "cookie")
    assert response.headers.getlist("Vary") == ["Cookie"]
    response.headers["Vary"] = "Accept-Encoding"
    vary_on(response, "Authorization")
    assert response.headers["Vary"] == "Accept-Encoding, Authorization"
    response.headers["Vary"] = "*"
    vary_on(response, "Cookie")
    assert response.headers["Vary"] == "*"


def test_authenticated_responses_are_not_stored(service: Flask) -> None:
    browser = logged_in(service, "alice")
    assert browser.get("/api/me").headers["Cache-Control"] == "no-store"


def test_store_is_the_one_configured(service: Flask) -> None:
    assert type(CoatCheck.state(service).store).__name__ == "MemorySessionStore"


def test_log_out_everywhere_else_keeps_nothing_for_a_user_disabled_meanwhile(
    service: Flask,
) -> None:
    # The review: the device asking was restamped after it last read the user, so
    # a disable racing "log out everywhere else" left that device logged in.
    alice = logged_in(service, "alice")
    CoatCheck.state(service).users.set_disabled(1, True)  # the admin's write lands first
    assert alice.client.delete("/api/sessions", headers=alice.headers()).status_code == 204
    assert alice.get("/api/me").status_code == 401


def test_login_and_register_answers_carry_the_new_csrf_token(service: Flask) -> None:
    # A single-page app needs no extra round trip to GET /api/csrf after logging in.
    add_user(service, "alice")
    browser = Browser(service)
    browser.csrf()
    reply = browser.post("/api/login", {"username": "alice", "password": PASSWORD})
    token = reply.json["csrf_token"]  # type: ignore[index]
    assert reply.headers["X-CSRF-Token"]
    browser.token = token
    assert browser.post("/api/logout").status_code == 204
    newcomer = Browser(service)
    newcomer.csrf()
    created = newcomer.post("/api/register", {"username": "bobby", "password": PASSWORD})
    assert created.status_code == 201
    newcomer.token = created.json["csrf_token"]  # type: ignore[index]
    assert newcomer.post("/api/logout").status_code == 204
