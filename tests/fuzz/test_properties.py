"""Properties of the HTTP edge: whatever a client sends, no 5xx and no session.

The Cookie header (session, remember-me and double-submit cookies), the
Authorization header and the JSON bodies of the service API. Each property
is bounded and derandomized, so CI runs the same examples every time; longer,
coverage-guided runs are the atheris targets in ``fuzz/``. Examples that once
failed are kept as explicit ``@example``\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from hypothesis import assume, example, given
from hypothesis import strategies as st
from werkzeug.http import parse_cookie
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.ids import store_key
from coatcheck.core.signing import CookieSigner
from coatcheck.ext.session import cookie_values

from ..ext.auth_app import PASSWORD, Browser
from ..ext.helpers import count_records, https_client
from ..service.conftest import add_user
from .conftest import (
    CSRF,
    KEYS,
    LIVE_ID,
    LIVE_USER_ID,
    REMEMBER,
    SESSION,
    bounded,
    sign_as,
    sign_remember,
)
from .strategies import (
    any_text,
    b64url,
    bodies,
    content_types,
    cookie_headers,
    cookie_pairs,
    jwt_shaped,
    mutate,
    mutations,
    wsgi_text,
)

# -- the Cookie header and the session cookie ------------------------------------------


def assert_no_server_error(response: TestResponse) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])


@bounded(300)
@given(cookie_headers)
@example(f"{SESSION}={LIVE_ID}")
@example(f"{SESSION}={LIVE_ID}; {SESSION}={LIVE_ID}")
@example(f'{SESSION}="{LIVE_ID}"')
@example(f"{SESSION}={LIVE_ID}\x00")
@example(f" \t{SESSION} = {LIVE_ID} ;")
@example(";" * 50_000 + f"{SESSION}={LIVE_ID}")
@example("\udcff\ud800=\x00; =; ==; ;")
def test_any_cookie_header_is_no_session_unless_it_names_the_live_one(
    library_app: Flask, header: str
) -> None:
    store = CoatCheck.state(library_app).store
    before = count_records(store)
    environ = {"HTTP_COOKIE": wsgi_text(header)}
    client = https_client(library_app, use_cookies=False)

    read = client.get("/read", environ_overrides=environ)
    me = client.get("/api/me", environ_overrides=environ)
    change = client.post("/change", environ_overrides=environ)

    for response in (read, me, change):
        assert_no_server_error(response)
    live = cookie_values(environ["HTTP_COOKIE"], SESSION) == [LIVE_ID]
    assert read.json == (
        {"data": {"marker": "live"}, "user": LIVE_USER_ID} if live else {"data": {}, "user": None}
    )
    assert me.status_code == (200 if live else 401)
    assert change.status_code == 403  # no CSRF token: refused before any write
    assert count_records(store) == before
    assert store.get(store_key(LIVE_ID)) is not None


@bounded(200)
@given(st.binary(max_size=300))
@example(b"__Host-session=\xff\xfe" + b"\x80" * 41)
def test_any_cookie_bytes_are_no_session(library_app: Flask, raw: bytes) -> None:
    client = https_client(library_app, use_cookies=False)
    response = client.get("/read", environ_overrides={"HTTP_COOKIE": wsgi_text(raw)})
    assert response.status_code == 200
    assert response.json == {"data": {}, "user": None}


@bounded(300)
@given(cookie_pairs)
@example([(SESSION, LIVE_ID)])
@example([(SESSION, LIVE_ID), ("other", "1"), (SESSION, LIVE_ID)])
@example([("__Host-session_", LIVE_ID), ("__host-session", LIVE_ID)])
@example([(SESSION, LIVE_ID + "=")])
def test_cookie_values_agree_with_a_reference_parse(
    library_app: Flask, pairs: list[tuple[str, str]]
) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    expected = [value for name, value in pairs if name == SESSION]
    assert cookie_values(header, SESSION) == expected
    assert parse_cookie(header).getlist(SESSION) == expected

    response = https_client(library_app, use_cookies=False).get("/read", headers={"Cookie": header})
    assert response.status_code == 200
    assert response.json is not None
    assert (response.json["user"] == LIVE_USER_ID) == (expected == [LIVE_ID])


# -- remember-me cookies ---------------------------------------------------------------


@pytest.fixture
def remembered(library_app: Flask) -> str:
    """Return a real remember-me cookie of a real user (never used, so never rotated)."""
    state = CoatCheck.state(library_app)
    state.users.create_user("remembered", state.hasher.hash(PASSWORD))
    browser = Browser(library_app)
    assert browser.login("remembered", remember=True).status_code == 200
    cookie = browser.cookie(REMEMBER)
    assert cookie is not None
    return cookie


def remember_values(real: str) -> st.SearchStrategy[str]:
    """Junk, the real cookie tampered with, and junk signed with the right key."""
    series = (CookieSigner(KEYS, "remember").verify(real, max_age=60) or "").partition(".")[0]
    return st.one_of(
        any_text,
        st.builds(mutate, st.just(real), mutations),
        any_text.map(sign_remember),
        st.builds(lambda a, b: sign_remember(f"{a}.{b}"), any_text, any_text),
        # The real series with another token: theft, which ends the series.
        any_text.map(lambda token: sign_remember(f"{series}.{token}")),
    )


@bounded(200)
@given(data=st.data())
def test_a_remember_cookie_never_logs_in_unless_it_is_the_real_one(
    library_app: Flask, remembered: str, data: st.DataObject
) -> None:
    value = data.draw(remember_values(remembered), label="value")
    twice = data.draw(st.booleans(), label="twice")
    assume(value != remembered)
    check_remember_cookie(library_app, value, twice=twice)


@pytest.mark.parametrize(
    "value",
    [
        "\ud800.\ud800",
        "a.b",
        "..",
        "." * 400,
        "a" * 43 + "." + "\x00" * 43,
        "a" * 43 + "." + "b" * 43,
        "x" * 100_000,
    ],
)
def test_a_remember_cookie_signed_with_the_right_key_but_junk_inside(
    library_app: Flask, remembered: str, value: str
) -> None:
    check_remember_cookie(library_app, sign_remember(value), twice=False)


def test_the_real_remember_cookie_sent_twice_does_not_log_in(
    library_app: Flask, remembered: str
) -> None:
    check_remember_cookie(library_app, remembered, twice=True)


def check_remember_cookie(app: Flask, value: str, *, twice: bool) -> None:
    store = CoatCheck.state(app).store
    before = count_records(store)
    header = f"{REMEMBER}={value}" + (f"; {REMEMBER}={value}" if twice else "")
    client = https_client(app, use_cookies=False)
    environ = {"HTTP_COOKIE": wsgi_text(header)}
    me = client.get("/api/me", environ_overrides=environ)
    read = client.get("/read", environ_overrides=environ)
    assert_no_server_error(me)
    assert_no_server_error(read)
    assert me.status_code == 401
    assert read.json == {"data": {}, "user": None}
    assert count_records(store) <= before  # theft detection may delete; nothing is created


# -- JSON bodies of the service API ----------------------------------------------------


def error_shape(response: TestResponse) -> None:
    assert_no_server_error(response)
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"error", "message"}, body
        assert isinstance(body["error"], str) and isinstance(body["message"], str)


def csrf_refused(response: TestResponse) -> bool:
    body = response.get_json(silent=True)
    return response.status_code == 403 and isinstance(body, dict) and body["error"] == "csrf_failed"


ANONYMOUS_ENDPOINTS = [
    ("POST", "/api/register"),
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("POST", "/api/token"),
    ("POST", "/api/token/refresh"),
    ("POST", "/api/token/revoke"),
]
ADMIN_ENDPOINTS = [
    ("POST", "/api/password"),
    ("POST", "/api/admin/users/{target}/roles"),
    ("POST", "/api/admin/users/999999/roles"),
    ("DELETE", "/api/sessions"),
    ("DELETE", "/api/sessions/0123456789abcdef0123456789abcdef"),
    ("DELETE", "/api/admin/users/{target}/sessions"),
]


@pytest.fixture
def service_admin(make_service: Callable[..., Flask]) -> tuple[Browser, dict[str, Any]]:
    """Return a logged-in admin of a fresh service and the IDs its endpoints take."""
    app = make_service()
    admin = add_user(app, "fuzzadmin", "admin")
    target = add_user(app, "target")
    browser = Browser(app)
    assert browser.login("fuzzadmin").status_code == 200
    return browser, {"admin": admin, "target": target}


@bounded(120)
@given(bodies, content_types)
@example(b"[" * 100_000 + b"]" * 100_000, "application/json")
@example(b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "application/json")
@example(b'{"username": "\\ud800", "password": "\\udfff"}', "application/json")
@example(b'{"username": "alice", "password": "x", "remember": 1e999}', "application/json")
@example(b'{"refresh_token": "' + b"a" * 64 + b'"}', "application/json")
@example(b'{"token": "' + b64url(b"[" * 3000).encode() + b'.e30.x"}', "application/json")
@example(b'{"roles": ["admin", "\\ud800"]}', "application/json")
@example(b"\xff\xfe\x00{", "application/json; charset=latin-1")
def test_json_bodies_never_make_a_server_error(
    service_admin: tuple[Browser, dict[str, Any]], body: bytes, content_type: str
) -> None:
    admin, ids = service_admin
    app = admin.client.application
    anonymous = Browser(app)
    anonymous.csrf()
    for method, path in ANONYMOUS_ENDPOINTS:
        response = anonymous.client.open(
            path, method=method, data=body, content_type=content_type, headers=anonymous.headers()
        )
        error_shape(response)
        assert not csrf_refused(response)
        if response.status_code < 300:
            anonymous.csrf()  # logged in or out: the session, and its token, changed
    for method, template in ADMIN_ENDPOINTS:
        path = template.format(**ids)
        response = admin.client.open(
            path, method=method, data=body, content_type=content_type, headers=admin.headers()
        )
        error_shape(response)
        assert not csrf_refused(response)
        if path == "/api/password" and response.status_code == 204:
            # A body that happened to change the password rotated the session: follow it.
            state = CoatCheck.state(app)
            state.users.set_password_hash(ids["admin"], state.hasher.hash(PASSWORD))
            admin.csrf()
    # The admin's session lives on: no body logged it out or made its token stale.
    assert admin.get("/api/me").status_code == 200


# -- over HTTP: bearer tokens and the double-submit cookie -----------------------------


@bounded(200)
@given(st.one_of(any_text, jwt_shaped, st.binary(max_size=200).map(wsgi_text)))
@example("Bearer " + "\xff" * 40)
@example("Bearer " + b64url(b"[" * 6000) + ".e30.")
def test_any_authorization_header_is_a_401(library_app: Flask, text: str) -> None:
    client = https_client(library_app, use_cookies=False)
    for value in (wsgi_text(text), "Bearer " + wsgi_text(text)):
        response = client.get("/api/me", environ_overrides={"HTTP_AUTHORIZATION": value})
        assert response.status_code == 401
        assert set(response.json or {}) == {"error", "message"}


@bounded(150)
@given(st.one_of(any_text, any_text.map(lambda v: sign_as("csrf", v))))
@example(sign_as("csrf", ""))
@example(sign_as("csrf", "!!"))
@example(sign_as("csrf", "A" * 42))
def test_any_double_submit_cookie_is_no_server_error(library_app: Flask, value: str) -> None:
    client = https_client(library_app, use_cookies=False)
    environ = {"HTTP_COOKIE": wsgi_text(f"{CSRF}={value}")}
    token = client.get("/api/csrf", environ_overrides=environ)
    assert token.status_code == 200
    change = client.post(
        "/change", environ_overrides=environ, headers={"X-CSRF-Token": token.json["csrf_token"]}
    )
    assert change.status_code in (200, 403)
