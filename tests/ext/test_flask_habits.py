"""The habits of a Flask-Login user: the application's user object, typed IDs,
an unauthorized handler, JSON or redirect by what the client sends, and the new
CSRF token handed out with a login."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, jsonify

from coatcheck import CoatCheck, current_user, login_required

from .auth_app import PASSWORD, Browser, build_auth_app


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    app = build_auth_app(make_app)
    Browser(app).register("alice")
    return app


def test_current_user_reaches_the_applications_user_object(
    make_app: Callable[..., Flask],
) -> None:
    app = build_auth_app(make_app)

    @app.get("/whoami")
    @login_required
    def whoami() -> Any:
        # id, username, roles cost nothing; email comes from the user store's object.
        return jsonify(id=current_user.id, email=current_user.email, same=current_user.user.id)

    Browser(app).register("alice")
    browser = Browser(app)
    browser.login("alice")
    assert browser.get("/whoami").json == {"id": 1, "email": None, "same": 1}


def test_a_registered_user_loader_is_what_current_user_is_made_of(
    make_app: Callable[..., Flask],
) -> None:
    @dataclass
    class Member:
        id: str
        username: str
        roles: tuple[str, ...]
        nickname: str

    members = {"m-7": Member("m-7", "mia", ("editor",), "Mimi")}
    app = Flask(__name__)
    app.config.update(make_app().config)
    cc = CoatCheck(app)
    cc.user_loader(members.get)

    @app.get("/in")
    def log_in() -> str:
        from coatcheck import login_user

        login_user(members["m-7"])
        return "in"

    @app.get("/nick")
    @login_required
    def nick() -> Any:
        return jsonify(id=current_user.id, nickname=current_user.nickname)

    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    client.get("/in")
    assert client.get("/nick").json == {"id": "m-7", "nickname": "Mimi"}


def test_the_unauthorized_handler_answers_instead_of_the_default(
    make_app: Callable[..., Flask],
) -> None:
    app = Flask(__name__)
    app.config.update(make_app().config)
    cc = CoatCheck(app)

    @cc.unauthorized_handler
    def please_log_in() -> Any:
        return jsonify(error="please_log_in"), 418

    @app.get("/secret")
    @login_required
    def secret() -> str:
        return "secret"

    reply = app.test_client().get("/secret")
    assert reply.status_code == 418 and reply.json == {"error": "please_log_in"}


@pytest.mark.parametrize(
    ("headers", "json"),
    [
        ({"Sec-Fetch-Mode": "cors", "Accept": "*/*"}, True),  # fetch("/account")
        ({"Sec-Fetch-Mode": "same-origin", "Accept": "*/*"}, True),
        ({"X-Requested-With": "XMLHttpRequest", "Accept": "*/*"}, True),
        ({"Sec-Fetch-Mode": "navigate", "Accept": "text/html,*/*"}, False),  # a page load
        ({"Accept": "text/html"}, False),
        ({"Accept": "application/json"}, True),
        ({}, True),  # curl and other API clients
    ],
)
def test_json_or_redirect_follows_what_the_client_sends(
    make_app: Callable[..., Flask], headers: dict[str, str], json: bool
) -> None:
    app = build_auth_app(make_app, COATCHECK_LOGIN_URL="/login")
    reply = app.test_client().get("/account", headers=headers)
    if json:
        assert reply.status_code == 401 and reply.json["error"] == "unauthenticated"  # type: ignore[index]
    else:
        assert reply.status_code == 302 and reply.location.startswith("/login?next=")


def test_a_login_answer_carries_the_new_csrf_token(app: Flask) -> None:
    browser = Browser(app)
    before = browser.csrf()
    reply = browser.post("/api/login", {"username": "alice", "password": PASSWORD})
    assert reply.status_code == 200
    fresh = reply.headers["X-CSRF-Token"]
    # The old token died with the login; the one handed out works at once.
    browser.token = before
    assert browser.post("/change").status_code == 403
    browser.token = fresh
    assert browser.post("/change").status_code == 200
    assert "X-CSRF-Token" not in browser.get("/api/me").headers  # only when it changed


def test_an_app_with_its_own_users_gets_no_user_database(
    make_app: Callable[..., Flask], tmp_path: Any
) -> None:
    @dataclass
    class Member:
        id: str
        username: str
        roles: tuple[str, ...]

    members = {"m-1": Member("m-1", "mia", ())}
    app = Flask(__name__, instance_path=str(tmp_path / "own-instance"))
    app.config.update(make_app().config)
    app.config["COATCHECK_DATABASE_URL"] = ""  # the default: a file in the instance folder
    app.config["COATCHECK_STORE_URL"] = "memory://"
    cc = CoatCheck(app)
    cc.user_loader(members.get)

    @app.get("/in")
    def log_in() -> str:
        from coatcheck import login_user, logout_user

        login_user(members["m-1"])
        logout_user()
        return "in and out"

    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    assert client.get("/in").status_code == 200
    assert not (tmp_path / "own-instance" / "coatcheck.db").exists()
