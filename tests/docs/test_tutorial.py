"""The tutorial's application works as the tutorial says (docs/tutorial/app.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coatcheck.core.passwords import PasswordHasher

from ..conftest import TEST_SECRET_KEY
from .conftest import DOCS, import_file

BASE = "https://localhost"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tutorial(tmp_path: Path) -> Any:
    return import_file(DOCS / "tutorial" / "app.py", "coatcheck_tutorial_app")


@pytest.fixture
def app(tutorial: Any, tmp_path: Path) -> Iterator[Flask]:
    app: Flask = tutorial.create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "COATCHECK_LOGIN_URL": "/login",
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
        },
        hasher=PasswordHasher.fast_for_tests(),
    )
    yield app


def client_of(app: Flask) -> FlaskClient:
    return app.test_client()


def form_token(client: FlaskClient, path: str) -> str:
    html = client.get(path, base_url=BASE).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def create_user(app: Flask, username: str, *, admin: bool = False) -> None:
    args = ["create-user", username, "--password", PASSWORD]
    result = app.test_cli_runner().invoke(args=[*args, *(["--admin"] if admin else [])])
    assert result.exit_code == 0, result.output
    assert f"created {username}" in result.output


def test_register_then_log_in_with_the_form(app: Flask) -> None:
    client = client_of(app)
    token = form_token(client, "/register")
    data = {"username": "bob", "password": PASSWORD, "csrf_token": token}
    assert client.post("/register", data=data, base_url=BASE).status_code == 302
    assert client.get("/api/me", base_url=BASE).json["username"] == "bob"  # type: ignore[index]

    fresh = client_of(app)
    data = {"username": "bob", "password": PASSWORD, "next": "/admin"}
    assert fresh.post("/login", data=data, base_url=BASE).status_code == 403  # no token
    data["csrf_token"] = form_token(fresh, "/login")
    response = fresh.post("/login", data=data, base_url=BASE)
    assert response.status_code == 302 and response.location == "/admin"
    assert "__Host-session=" in response.headers["Set-Cookie"]
    assert fresh.get("/api/me", base_url=BASE).json["username"] == "bob"  # type: ignore[index]


def test_the_session_keeps_notes_and_logout_ends_it(app: Flask) -> None:
    create_user(app, "alice")
    client = client_of(app)
    token = form_token(client, "/login")
    login = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    client.post("/login", data=login, base_url=BASE)
    token = form_token(client, "/")
    client.post("/notes", data={"text": "milk", "csrf_token": token}, base_url=BASE)
    assert "<p>milk" in client.get("/", base_url=BASE).get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": token}, base_url=BASE).status_code == 302
    response = client.get("/api/me", base_url=BASE)
    assert response.status_code == 401 and response.json["error"] == "unauthenticated"  # type: ignore[index]


def test_log_in_from_fetch_with_the_csrf_header(app: Flask) -> None:
    create_user(app, "alice")
    client = client_of(app)
    body = {"username": "alice", "password": PASSWORD}
    refused = client.post("/api/login", json=body, base_url=BASE)
    assert refused.status_code == 403 and refused.json["error"] == "csrf_failed"  # type: ignore[index]
    token = client.get("/api/csrf", base_url=BASE).json["csrf_token"]  # type: ignore[index]
    response = client.post("/api/login", json=body, headers={"X-CSRF-Token": token}, base_url=BASE)
    assert response.status_code == 200
    assert response.json["user"]["username"] == "alice"  # type: ignore[index]
    # The token from before the login is dead; the one the login answered works.
    old = client.post("/api/login", json=body, headers={"X-CSRF-Token": token}, base_url=BASE)
    assert old.status_code == 403
    new = response.json["csrf_token"]  # type: ignore[index]
    again = client.post("/api/login", json=body, headers={"X-CSRF-Token": new}, base_url=BASE)
    assert again.status_code == 200


def test_remember_me_logs_a_new_browser_session_back_in(app: Flask) -> None:
    create_user(app, "alice")
    client = client_of(app)
    token = form_token(client, "/login")
    login = {"username": "alice", "password": PASSWORD, "csrf_token": token, "remember": "yes"}
    response = client.post("/login", data=login, base_url=BASE)
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("__Host-remember=") for c in cookies)
    remember = client.get_cookie("__Host-remember")
    assert remember is not None
    # The browser is closed: the session cookie is gone, the remember-me cookie stays.
    later = client_of(app)
    later.set_cookie("__Host-remember", remember.value, secure=True, path="/", domain="localhost")
    me = later.get("/api/me", base_url=BASE)
    assert me.status_code == 200 and me.json["username"] == "alice"  # type: ignore[index]
    rotated = later.get_cookie("__Host-remember")
    assert rotated is not None and rotated.value != remember.value


def test_the_admin_page_needs_the_role(app: Flask) -> None:
    create_user(app, "bob")
    create_user(app, "alice", admin=True)
    for username, status in (("bob", 403), ("alice", 200)):
        client = client_of(app)
        token = form_token(client, "/login")
        login = {"username": username, "password": PASSWORD, "csrf_token": token}
        client.post("/login", data=login, base_url=BASE)
        assert client.get("/admin", base_url=BASE).status_code == status
    browser = {"Accept": "text/html"}
    anonymous = client_of(app).get("/admin", headers=browser, base_url=BASE)
    assert anonymous.status_code == 302 and anonymous.location == "/login?next=%2Fadmin"


def test_api_tokens_call_a_view_and_refresh(app: Flask) -> None:
    create_user(app, "alice", admin=True)
    client = client_of(app)
    body = {"username": "alice", "password": PASSWORD}
    pair = client.post("/api/token", json=body, base_url=BASE).json
    assert pair is not None and pair["token_type"] == "Bearer"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}", pair["refresh_token"])
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    me = client.get("/api/me", headers=bearer, base_url=BASE)
    assert me.status_code == 200 and me.json == {  # type: ignore[comparison-overlap]
        "username": "alice",
        "roles": ["admin"],
        "via": "bearer",
    }
    refresh = {"refresh_token": pair["refresh_token"]}
    new = client.post("/api/token/refresh", json=refresh, base_url=BASE)
    assert new.status_code == 200 and new.json["refresh_token"] != pair["refresh_token"]  # type: ignore[index]
    forged = {"Authorization": f"Bearer {pair['access_token']}x"}
    assert client.get("/api/me", headers=forged, base_url=BASE).status_code == 401
