"""The cookie inspector and the lessons: what they show, and what they never show."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.records import RecordKind
from coatcheck.ext import CoatCheck
from coatcheck.service import create_app
from coatcheck.service.inspect import LESSON_COOKIE, mask

from ..conftest import TEST_SECRET_KEY

BASE = "https://localhost"
PASSWORD = "correct horse battery"
TEMPLATES = Path(__file__).parents[2] / "src" / "coatcheck" / "service" / "templates"
LESSON_PATHS = ["/lessons", "/sessions/hello", "/set-cookie", "/check-cookie", "/set", "/get"]


def make_app(tmp_path: Path, **config: Any) -> Flask:
    return create_app(
        {
            "COATCHECK_INSTANCE": str(tmp_path / "instance"),
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            "SECRET_KEY": TEST_SECRET_KEY,
            "TESTING": True,
            **config,
        }
    )


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def raw_client(app: Flask) -> FlaskClient:
    """A client without a cookie jar, for hand-made Cookie headers."""
    return app.test_client(use_cookies=False)


def get(client: FlaskClient, path: str, cookie: str | None = None) -> TestResponse:
    headers = {"Cookie": cookie} if cookie is not None else {}
    return client.get(path, base_url=BASE, headers=headers)


def log_in(app: Flask, client: FlaskClient, *, remember: bool = False) -> None:
    users = CoatCheck.state(app).users
    users.create_user("alice", PasswordHasher.fast_for_tests().hash(PASSWORD))
    token = get(client, "/api/csrf").get_json()["csrf_token"]
    response = client.post(
        "/api/login",
        base_url=BASE,
        json={"username": "alice", "password": PASSWORD, "remember": remember},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def jar_value(client: FlaskClient, name: str) -> str | None:
    cookie = client.get_cookie(name, domain="localhost")
    return cookie.value if cookie is not None else None


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cookie["name"]: cookie for cookie in report["cookies"]}


def store_session(client: FlaskClient, **data: str) -> None:
    """Give the client a stored server session holding ``data`` (as an application would)."""
    with client.session_transaction(base_url=BASE) as session:
        session.update(data)


def assert_not_leaked(secret: str, body: str) -> None:
    assert len(secret) >= 12
    for start in range(len(secret) - 11):
        assert secret[start : start + 12] not in body, f"{secret[:4]}… leaked"


# -- what the browser sent -------------------------------------------------------


def test_api_lists_each_cookie_with_its_size_and_share_of_the_limit(
    raw_client: FlaskClient,
) -> None:
    response = get(raw_client, "/api/inspect", "flavour=oatmeal; big=" + "x" * 4000)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    report = response.get_json()
    assert report["cookie_limit"] == 4096
    assert report["cookie_count"] == 2
    cookies = by_name(report)
    assert cookies["flavour"]["value"] == "oatmeal"
    assert cookies["flavour"]["size"] == len("flavour=oatmeal")
    assert cookies["flavour"]["percent"] == round(15 * 100 / 4096, 1)
    assert cookies["flavour"]["masked"] is False and cookies["flavour"]["coatcheck"] is None
    assert cookies["big"]["size"] == 4004 and cookies["big"]["over_limit"] is False
    assert cookies["big"]["percent"] == 97.8
    assert cookies["big"]["value"] == "xxxx… (4000 chars)" and cookies["big"]["masked"] is True


def test_sizes_are_bytes_as_sent(raw_client: FlaskClient) -> None:
    # WSGI hands the header over as latin-1 text: "é" in UTF-8 is two bytes.
    sent = "café=crème; mouse=crème".encode().decode("latin-1")
    report = get(raw_client, "/api/inspect", sent).get_json()
    cafe, mouse = report["cookies"]
    assert cafe["name"] == "café" and cafe["value"] == "c… (5 chars)"
    assert cafe["size"] == len("café=crème".encode())
    assert mouse["value"] == "crème" and mouse["size"] == len("mouse=crème".encode())


def test_a_cookie_over_the_limit_is_flagged(raw_client: FlaskClient) -> None:
    report = get(raw_client, "/api/inspect", "huge=" + "y" * 5000).get_json()
    [cookie] = report["cookies"]
    assert cookie["over_limit"] is True and cookie["percent"] > 100


@pytest.mark.parametrize(
    "name",
    ["__Host-session", "__Host-remember", "__Host-csrf", "api_token", "AUTH", "xsid", "my_session"],
)
def test_secret_looking_cookies_are_masked(raw_client: FlaskClient, name: str) -> None:
    secret = "S3cr3tValue-" + "q" * 31
    response = get(raw_client, "/api/inspect", f"{name}={secret}; mouse=visible")
    body = response.get_data(as_text=True)
    cookies = by_name(response.get_json())
    assert cookies[name]["value"] == "S3cr… (43 chars)"
    assert cookies[name]["masked"] is True
    assert cookies["mouse"]["value"] == "visible"
    assert_not_leaked(secret, body)


def test_mask_shows_few_characters_of_short_values() -> None:
    assert mask("AbC1" + "z" * 39) == "AbC1… (43 chars)"
    assert mask("abcdefgh") == "ab… (8 chars)"
    assert mask("abc") == "… (3 chars)"
    assert mask("") == "… (0 chars)"


def test_coatcheck_cookies_come_with_their_attributes(raw_client: FlaskClient) -> None:
    report = get(raw_client, "/api/inspect", "__Host-csrf=abc").get_json()
    assert by_name(report)["__Host-csrf"]["coatcheck"] == "csrf"
    own = {cookie["name"]: cookie for cookie in report["coatcheck_cookies"]}
    assert set(own) == {"__Host-session", "__Host-remember", "__Host-csrf"}
    assert own["__Host-csrf"]["sent"] is True and own["__Host-session"]["sent"] is False
    attributes = [row["attribute"] for row in own["__Host-session"]["attributes"]]
    for expected in ("__Host- prefix", "Secure", "HttpOnly", "SameSite=Lax", "Path=/", "no Domain"):
        assert expected in attributes
    assert "browser-session (no Max-Age)" in attributes
    remember = [row["attribute"] for row in own["__Host-remember"]["attributes"]]
    assert f"Max-Age={30 * 24 * 3600}" in remember
    assert all(row["meaning"] for row in own["__Host-session"]["attributes"])


def test_insecure_mode_names_and_attributes(tmp_path: Path) -> None:
    app = make_app(tmp_path, COATCHECK_COOKIE_SECURE=False)
    client = app.test_client(use_cookies=False)
    response = client.get("/api/inspect", headers={"Cookie": "session=" + "k" * 43})
    report = response.get_json()
    own = {cookie["name"]: cookie for cookie in report["coatcheck_cookies"]}
    assert set(own) == {"session", "remember", "csrf"}
    attributes = [row["attribute"] for row in own["session"]["attributes"]]
    assert "Secure" not in attributes and "__Host- prefix" not in attributes
    assert "no Secure (insecure mode)" in attributes
    assert by_name(report)["session"]["value"] == "kkkk… (43 chars)"


def test_duplicated_cookies_are_all_listed(raw_client: FlaskClient) -> None:
    report = get(
        raw_client, "/api/inspect", "mouse=1; mouse=2; __Host-session=x; __Host-session=y"
    ).get_json()
    names = [cookie["name"] for cookie in report["cookies"]]
    assert names == ["mouse", "mouse", "__Host-session", "__Host-session"]
    assert all(cookie["duplicate"] for cookie in report["cookies"])
    assert [c["value"] for c in report["cookies"][:2]] == ["1", "2"]


# -- the session ------------------------------------------------------------------


def test_reading_the_inspector_creates_no_session(app: Flask, client: FlaskClient) -> None:
    for path in ("/api/inspect", "/inspect"):
        response = get(client, path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
    report = get(client, "/api/inspect").get_json()
    assert report["session"]["stored"] is False
    assert report["session"]["handle"] is None and report["session"]["data"] == {}
    assert CoatCheck.state(app).store.list_all() == []


def test_garbage_session_cookie_creates_no_session(app: Flask, raw_client: FlaskClient) -> None:
    response = get(raw_client, "/api/inspect", "__Host-session=" + "A" * 43)
    assert response.status_code == 200
    assert CoatCheck.state(app).store.list_all() == []


def test_reading_the_inspector_does_not_change_the_session(app: Flask, client: FlaskClient) -> None:
    store_session(client, hello="World")
    [before] = CoatCheck.state(app).store.list_all()
    for path in ("/api/inspect", "/inspect"):
        response = get(client, path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
    [after] = CoatCheck.state(app).store.list_all()
    assert (after.key, after.handle, after.data, after.meta) == (
        before.key,
        before.handle,
        before.data,
        before.meta,
    )


def test_session_contents_are_shown(app: Flask, client: FlaskClient) -> None:
    store_session(client, note="kept")
    get(client, "/sessions/hello")  # a stored session: the lesson writes into it
    [record] = CoatCheck.state(app).store.list_all()
    session = get(client, "/api/inspect").get_json()["session"]
    assert session["stored"] is True
    assert session["handle"] == record.handle
    assert session["data"] == {"note": "kept", "hello": "World", "goodnight": "Moon"}
    for key in ("created_at", "last_seen_at", "expires_at"):
        assert session[key].endswith("Z")
    assert session["user"] is None


def test_logged_in_session_shows_the_user_but_not_the_meta(app: Flask, client: FlaskClient) -> None:
    log_in(app, client)
    get(client, "/sessions/hello")
    [record] = CoatCheck.state(app).store.list_all()
    response = get(client, "/api/inspect")
    session = response.get_json()["session"]
    assert session["user"]["username"] == "alice"
    assert session["data"] == {"hello": "World", "goodnight": "Moon"}
    assert "csrf" not in session and "meta" not in session
    assert_not_leaked(record.meta["csrf"], response.get_data(as_text=True))


def test_no_secret_reaches_an_xss_reading_the_inspector(app: Flask, client: FlaskClient) -> None:
    get(client, "/api/csrf")  # the anonymous double-submit cookie
    anonymous_csrf = jar_value(client, "__Host-csrf")
    log_in(app, client, remember=True)
    get(client, "/sessions/hello")
    secrets = {
        "__Host-session": jar_value(client, "__Host-session"),
        "__Host-remember": jar_value(client, "__Host-remember"),
        "__Host-csrf": anonymous_csrf,
    }
    assert secrets["__Host-session"] and secrets["__Host-remember"] and anonymous_csrf
    [session_record] = [
        r for r in CoatCheck.state(app).store.list_all() if r.kind is RecordKind.SESSION
    ]
    csrf_secret = session_record.meta["csrf"]
    for path in ("/api/inspect", "/inspect", "/check-cookie", "/sessions/hello"):
        response = get(client, path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        for value in [*filter(None, secrets.values()), csrf_secret]:
            assert_not_leaked(value, body)
    report = get(client, "/api/inspect").get_json()
    cookies = by_name(report)
    session_id = secrets["__Host-session"]
    assert session_id is not None
    assert cookies["__Host-session"]["value"] == mask(session_id)
    assert cookies["__Host-session"]["value"].endswith(f"… ({len(session_id)} chars)")


def test_session_data_under_a_secret_key_is_masked(client: FlaskClient) -> None:
    secret = "Fl4sk-WTF-" + "s" * 30
    get(client, "/sessions/hello")
    with client.session_transaction(base_url=BASE) as session:
        session["csrf_token"] = secret
    response = get(client, "/api/inspect")
    assert response.get_json()["session"]["data"]["csrf_token"] == mask(f'"{secret}"')
    assert_not_leaked(secret, response.get_data(as_text=True))
    lesson = get(client, "/sessions/csrf_token")
    assert lesson.get_json()["session"]["session_value"] == mask(f'"{secret}"')
    assert_not_leaked(secret, lesson.get_data(as_text=True))


@pytest.mark.parametrize("path", ["/api/inspect", "/inspect", "/check-cookie", "/sessions/k"])
def test_other_applications_cookies_are_masked(raw_client: FlaskClient, path: str) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLWEtand0"
    api_key = "ak_live_" + "9" * 32
    cookie = f"jwt={jwt}; api_key={api_key}; prefs=dark-mode-on; mouse=Cookie"
    response = get(raw_client, path, cookie)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for value in (jwt, api_key):
        assert_not_leaked(value, body)
    assert "dark-mode-on" not in body
    assert "Cookie" in body  # the lesson's own demo cookie stays visible
    if path == "/api/inspect":
        cookies = by_name(response.get_json())
        assert cookies["jwt"]["value"] == mask(jwt) and cookies["jwt"]["masked"] is True
        assert cookies["api_key"]["value"] == mask(api_key)
        assert cookies["mouse"]["value"] == "Cookie" and cookies["mouse"]["masked"] is False


def test_demo_cookies_are_masked_too_without_the_lessons(tmp_path: Path) -> None:
    app = make_app(tmp_path, COATCHECK_LESSONS="false")
    response = get(app.test_client(use_cookies=False), "/api/inspect", "username=Alice")
    [cookie] = response.get_json()["cookies"]
    assert cookie["value"] == mask("Alice") and cookie["masked"] is True


# -- bad input ----------------------------------------------------------------------


BAD_COOKIES = [
    "a=" + "x" * 100_000,
    "; ".join(f"c{i}={i}" for i in range(5000)),
    "dup=1; dup=2; dup=3",
    "bad=\xff\xfe\x80; ok=1",
    "\xff\xfe=\x00\x01",
    "noequals; =empty; ;;; =; x",
    '"quoted"="va;lue"; q="a\\"b"',
    "__Host-session=" + "z" * 5000 + "; __Host-session=short",
    "<b>=<i>",
]


@pytest.mark.parametrize("cookie", BAD_COOKIES)
@pytest.mark.parametrize(
    "path", ["/api/inspect", "/inspect", "/sessions/k", "/check-cookie", "/get", "/set-cookie"]
)
def test_bad_cookies_never_make_a_500(
    app: Flask, raw_client: FlaskClient, path: str, cookie: str
) -> None:
    response = get(raw_client, path, cookie)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert CoatCheck.state(app).store.list_all() == []


def test_many_cookies_are_capped_in_the_report(raw_client: FlaskClient) -> None:
    cookie = "; ".join(f"c{i}={i}" for i in range(5000))
    report = get(raw_client, "/api/inspect", cookie).get_json()
    assert report["cookie_count"] == 5000
    assert len(report["cookies"]) + report["cookies_not_shown"] == 5000


def test_html_escapes_cookie_names_and_values(raw_client: FlaskClient) -> None:
    response = get(raw_client, "/inspect", "mouse=<script>alert(1)</script>; <img>=1")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body and "<img>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img&gt;" in body


def test_html_escapes_session_data(app: Flask, client: FlaskClient) -> None:
    get(client, "/sessions/hello")
    with client.session_transaction(base_url=BASE) as session:
        session["note"] = "<script>alert(2)</script>"
    body = get(client, "/inspect").get_data(as_text=True)
    assert "<script>alert(2)</script>" not in body
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body


def test_html_shows_a_meter_per_cookie(raw_client: FlaskClient) -> None:
    body = get(raw_client, "/inspect", "a=" + "x" * 2046).get_data(as_text=True)
    assert 'class="meter"' in body and 'width="50.0"' in body and "50.0%" in body


def test_html_cuts_long_values_short(raw_client: FlaskClient) -> None:
    body = get(raw_client, "/inspect", "flavour=" + "v" * 3000).get_data(as_text=True)
    assert "v" * 200 in body and "v" * 201 not in body
    assert "3000 characters" in body


@pytest.mark.parametrize("template", ["inspect.html", "lessons.html"])
def test_templates_have_no_inline_script_or_style(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    assert text.startswith('{% extends "base.html" %}')
    assert "<script" not in text.lower() and "style=" not in text.lower()
    assert "|safe" not in text


# -- the lessons ------------------------------------------------------------------


def test_sessions_lesson_sets_defaults_and_a_cookie(app: Flask, client: FlaskClient) -> None:
    first = get(client, "/sessions/hello")
    assert first.status_code == 200
    body = first.get_json()
    assert body["session"]["session_key"] == "hello"
    assert body["session"]["session_value"] == "World"
    assert body["session"]["session_accessed"].endswith("Z")
    assert body["cookies"] == []
    mouse = [h for h in first.headers.getlist("Set-Cookie") if h.startswith("mouse=")]
    assert mouse and mouse[0].startswith("mouse=Cookie;")

    second = get(client, "/sessions/goodnight").get_json()
    assert second["session"]["session_value"] == "Moon"
    cookies = {name: value for item in second["cookies"] for name, value in item.items()}
    assert cookies["mouse"] == "Cookie"
    assert cookies[LESSON_COOKIE] == jar_value(client, LESSON_COOKIE)  # a demo: shown
    assert get(client, "/sessions/missing").get_json()["session"]["session_value"] is None


def test_an_anonymous_visitor_gets_a_cookie_session_not_a_record(
    app: Flask, client: FlaskClient
) -> None:
    first = get(client, "/sessions/hello")
    lesson = [h for h in first.headers.getlist("Set-Cookie") if h.startswith(LESSON_COOKIE)]
    assert len(lesson) == 1
    attributes = {part.strip() for part in lesson[0].split(";")[1:]}
    assert attributes == {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"}
    assert jar_value(client, "__Host-session") is None
    again = get(client, "/sessions/goodnight")
    assert again.get_json()["session"]["session_value"] == "Moon"
    # Written only when missing: a valid cookie session is not sent again.
    assert not [h for h in again.headers.getlist("Set-Cookie") if h.startswith(LESSON_COOKIE)]
    assert CoatCheck.state(app).store.count(RecordKind.SESSION) == 0
    assert CoatCheck.state(app).store.list_all() == []


def test_a_flood_of_anonymous_lesson_requests_does_not_grow_the_store(app: Flask) -> None:
    store = CoatCheck.state(app).store
    for i in range(1000):
        client = app.test_client()  # a new visitor each time
        cookie = None if i % 2 else f"{LESSON_COOKIE}=forged{i}; __Host-session={'A' * 43}"
        assert get(client, f"/sessions/k{i}", cookie).status_code == 200
    assert store.count(RecordKind.SESSION) == 0
    assert store.list_all() == []


@pytest.mark.parametrize("tamper", ["flip", "unsigned", "other-purpose"])
def test_a_tampered_cookie_session_is_ignored(app: Flask, client: FlaskClient, tamper: str) -> None:
    get(client, "/sessions/hello")
    signed = jar_value(client, LESSON_COOKIE)
    assert signed is not None
    payload = base64.urlsafe_b64encode(json.dumps({"hello": "Mallory"}).encode()).decode()
    forged = {
        "flip": signed[:-2] + ("A" if signed[-2] != "A" else "B") + signed[-1],
        "unsigned": payload.rstrip("="),
        "other-purpose": CoatCheck.state(app).csrf_signer.sign(json.dumps({"hello": "Mallory"})),
    }[tamper]
    client.set_cookie(LESSON_COOKIE, forged, domain="localhost")
    response = get(client, "/sessions/hello")
    assert response.get_json()["session"]["session_value"] == "World"
    # A bad cookie session is replaced by a good one, as a bad session ID would be.
    assert jar_value(client, LESSON_COOKIE) not in (None, forged)


def test_a_stored_session_is_used_for_the_lesson(app: Flask, client: FlaskClient) -> None:
    log_in(app, client)
    response = get(client, "/sessions/hello")
    assert response.get_json()["session"]["session_value"] == "World"
    assert not [h for h in response.headers.getlist("Set-Cookie") if h.startswith(LESSON_COOKIE)]
    [record] = CoatCheck.state(app).store.list_all()
    assert set(record.data) >= {"hello", "goodnight"}


def test_sessions_lesson_keeps_existing_values(client: FlaskClient) -> None:
    store_session(client, hello="Moon")
    assert get(client, "/sessions/hello").get_json()["session"]["session_value"] == "Moon"


@pytest.mark.parametrize("key", ["k" * 2048, "ключ", "🍪", "<script>", "a b", "%00"])
def test_sessions_lesson_takes_any_key(client: FlaskClient, key: str) -> None:
    from urllib.parse import quote

    response = get(client, "/sessions/" + quote(key, safe=""))
    assert response.status_code == 200
    assert response.get_json()["session"]["session_key"] == key


def test_set_cookie_lesson_sets_a_bare_cookie(client: FlaskClient) -> None:
    response = get(client, "/set-cookie")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.headers.getlist("Set-Cookie") == ["flavour=oatmeal; Path=/"]
    assert "flavour=oatmeal" in response.get_data(as_text=True)
    assert get(client, "/check-cookie").get_data(as_text=True) == "flavour=oatmeal\n"


def test_check_cookie_lists_and_masks(raw_client: FlaskClient) -> None:
    secret = "T0k3n" + "w" * 38
    response = get(raw_client, "/check-cookie", f"mouse=1; __Host-session={secret}; b=two")
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).splitlines() == [
        "mouse=1",
        f"__Host-session={mask(secret)}",
        "b=… (3 chars)",
    ]
    empty = get(raw_client, "/check-cookie").get_data(as_text=True)
    assert "no cookies" in empty


def test_set_and_get_lessons(client: FlaskClient) -> None:
    assert get(client, "/get").get_data(as_text=True).strip() == "Hello guest"
    response = get(client, "/set")
    assert response.mimetype == "text/plain"
    [header] = response.headers.getlist("Set-Cookie")
    pair, *attributes = (part.strip() for part in header.split(";"))
    assert pair == "username=Alice"
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"]
    assert get(client, "/get").get_data(as_text=True).strip() == "Hello Alice"


def test_lessons_page_links_each_lesson_and_the_inspector(client: FlaskClient) -> None:
    response = get(client, "/lessons")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for href in ("/sessions/hello", "/set-cookie", "/check-cookie", "/set", "/get"):
        assert f'href="{href}"' in body
    assert body.count('href="/inspect"') >= 5


@pytest.mark.parametrize("path", LESSON_PATHS)
def test_lessons_are_gone_when_turned_off(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path, COATCHECK_LESSONS="false")
    client = app.test_client()
    assert get(client, path).status_code == 404
    assert get(client, "/api/inspect").status_code == 200
    assert CoatCheck.state(app).store.list_all() == []
