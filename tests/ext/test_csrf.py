"""CSRF: session-bound masked tokens, the double-submit cookie, provenance checks.

Runs on every store (memory, SQLite and Redis).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from coatcheck import CoatCheck

from ..conftest import TEST_SECRET_KEY
from .auth_app import Browser, build_auth_app
from .helpers import count_records, https_client, set_cookies


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return build_auth_app(make_app)


def changes(app: Flask) -> int:
    response = https_client(app).get("/changes")
    assert response.json is not None
    count: int = response.json["changes"]
    return count


def assert_refused(response, reason_words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 403
    assert response.json["error"] == "csrf_failed"
    assert reason_words in response.json["message"]


def test_anonymous_token_comes_with_a_signed_cookie_and_no_record(app: Flask) -> None:
    client = https_client(app)
    response = client.get("/api/csrf")
    assert response.status_code == 200 and response.json is not None
    assert len(response.json["csrf_token"]) > 40
    [cookie] = set_cookies(response)
    assert cookie.name == "__Host-csrf"
    assert cookie.attributes == {"secure": "", "httponly": "", "path": "/", "samesite": "Lax"}
    assert count_records(CoatCheck.state(app).store) == 0
    # The cookie is reused, not re-issued, on the next request.
    assert set_cookies(client.get("/api/csrf")) == []


def test_tokens_are_masked_per_render(app: Flask) -> None:
    browser = Browser(app)
    first, second = browser.csrf(), browser.csrf()
    assert first != second
    for token in (first, second):
        browser.token = token
        assert browser.post("/change").status_code == 200


def test_missing_token(app: Flask) -> None:
    browser = Browser(app)
    browser.csrf()
    browser.token = None
    assert_refused(browser.post("/change"), "missing")
    assert changes(app) == 0


def test_wrong_token(app: Flask) -> None:
    browser = Browser(app)
    token = browser.csrf()
    browser.token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_refused(browser.post("/change"), "invalid")
    browser.token = "not-even-base64!!"
    assert_refused(browser.post("/change"), "invalid")
    browser.token = "x" * 10_000
    assert_refused(browser.post("/change"), "invalid")
    assert changes(app) == 0


def test_token_without_its_cookie(app: Flask) -> None:
    token = Browser(app).csrf()
    stranger = Browser(app)
    stranger.token = token
    assert_refused(stranger.post("/change"), "no CSRF cookie")
    assert changes(app) == 0


def test_token_of_another_anonymous_client(app: Flask) -> None:
    victim, attacker = Browser(app), Browser(app)
    victim.csrf()
    attacker_token = attacker.csrf()
    victim.token = attacker_token
    assert_refused(victim.post("/change"), "invalid")
    assert changes(app) == 0


def test_token_of_another_session(app: Flask) -> None:
    alice, bob = Browser(app), Browser(app)
    alice.register("alice")
    bob.register("bobby")
    alice.token = bob.token
    assert_refused(alice.post("/change"), "invalid")
    assert changes(app) == 0
    alice.csrf()
    assert alice.post("/change").status_code == 200


def test_token_from_before_login_stops_working(app: Flask) -> None:
    Browser(app).register("alice")
    browser = Browser(app)
    before = browser.csrf()
    assert (
        browser.post(
            "/api/login", {"username": "alice", "password": "correct horse battery"}
        ).status_code
        == 200
    )
    browser.token = before
    assert_refused(browser.post("/change"), "invalid")
    browser.csrf()
    assert browser.post("/change").status_code == 200


def test_login_itself_needs_a_token(app: Flask) -> None:
    Browser(app).register("alice")
    browser = Browser(app)
    response = browser.post(
        "/api/login", {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 403
    assert browser.cookie("__Host-session") is None
    assert count_records(CoatCheck.state(app).store) == 1  # alice's registration session only


@pytest.mark.parametrize("site", ["cross-site", "Cross-Site"])
def test_cross_site_is_refused_even_with_a_token(app: Flask, site: str) -> None:
    browser = Browser(app)
    browser.csrf()
    assert_refused(browser.post("/change", **{"Sec-Fetch-Site": site}), "Cross-site")
    assert changes(app) == 0


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost", "https://localhost.evil.example"]
)
def test_foreign_origin_is_refused_even_with_a_token(app: Flask, origin: str) -> None:
    browser = Browser(app)
    browser.csrf()
    assert_refused(browser.post("/change", Origin=origin), "Origin")
    assert changes(app) == 0


def test_trusted_origin_is_accepted(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app, COATCHECK_CSRF_TRUSTED_ORIGINS="https://app.example.com")
    browser = Browser(app)
    browser.csrf()
    assert (
        browser.post(
            "/change", Origin="https://app.example.com", **{"Sec-Fetch-Site": "same-site"}
        ).status_code
        == 200
    )


def test_non_browser_client_without_origin_headers_needs_only_the_token(app: Flask) -> None:
    client = https_client(app)
    token = client.get("/api/csrf").json["csrf_token"]  # type: ignore[index]
    assert client.post("/change", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.post("/change").status_code == 403


def test_form_field_is_accepted(app: Flask) -> None:
    client = https_client(app)
    page = client.get("/form").text
    token = page.split('value="')[1].split('"')[0]
    assert client.post("/change", data={"csrf_token": token}).status_code == 200
    assert client.post("/change", data={"csrf_token": "nope"}).status_code == 403


def test_bearer_without_cookies_is_exempt(app: Flask) -> None:
    raw = https_client(app, use_cookies=False)
    assert raw.post("/change", headers={"Authorization": "Bearer abc"}).status_code == 200
    with_cookie = raw.post("/change", headers={"Authorization": "Bearer abc", "Cookie": "a=b"})
    assert with_cookie.status_code == 403


def test_exempt_view(app: Flask) -> None:
    assert https_client(app).post("/hook").text == "exempt"


def test_safe_methods_are_not_checked(app: Flask) -> None:
    assert (
        https_client(app).get("/changes", headers={"Origin": "https://evil.example"}).status_code
        == 200
    )


def test_html_clients_get_an_html_refusal(app: Flask) -> None:
    response = https_client(app).post("/change", headers={"Accept": "text/html"})
    assert response.status_code == 403 and response.mimetype == "text/html"


def test_tampered_csrf_cookie_is_no_secret(app: Flask) -> None:
    raw = https_client(app, use_cookies=False)
    response = raw.get("/api/csrf")
    token = response.json["csrf_token"]  # type: ignore[index]
    [cookie] = set_cookies(response)
    tampered = cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB")
    refused = raw.post(
        "/change", headers={"X-CSRF-Token": token, "Cookie": f"__Host-csrf={tampered}"}
    )
    assert_refused(refused, "no CSRF cookie")
    accepted = raw.post(
        "/change", headers={"X-CSRF-Token": token, "Cookie": f"__Host-csrf={cookie.value}"}
    )
    assert accepted.status_code == 200


def test_old_key_still_verifies_after_rotation(make_app: Callable[..., Flask], tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = build_auth_app(make_app)
    raw = https_client(old, use_cookies=False)
    response = raw.get("/api/csrf")
    token = response.json["csrf_token"]  # type: ignore[index]
    [cookie] = set_cookies(response)
    new_key = "a-brand-new-secret-key-0123456789"
    rotated = build_auth_app(make_app, SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[TEST_SECRET_KEY])
    headers = {"X-CSRF-Token": token, "Cookie": f"__Host-csrf={cookie.value}"}
    assert (
        https_client(rotated, use_cookies=False).post("/change", headers=headers).status_code == 200
    )
    dropped = build_auth_app(make_app, SECRET_KEY=new_key)
    assert (
        https_client(dropped, use_cookies=False).post("/change", headers=headers).status_code == 403
    )
