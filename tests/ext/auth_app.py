"""A small application using coatcheck's login API, and a client that drives it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request, session
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck import (
    authenticate,
    change_password,
    create_user,
    csrf_exempt,
    csrf_token,
    current_user,
    login_required,
    login_user,
    logout_user,
    roles_required,
)
from coatcheck.core.redirects import safe_next

from .helpers import https_client

PASSWORD = "correct horse battery"


def build_auth_app(make_app: Callable[..., Flask], **config: Any) -> Flask:
    app = make_app(**config)
    state = {"changes": 0}

    @app.get("/api/csrf")
    def api_csrf() -> Any:
        return jsonify(csrf_token=csrf_token())

    @app.post("/api/register")
    def api_register() -> Any:
        body = request.get_json()
        user = create_user(body["username"], body["password"])
        login_user(user)
        return jsonify(user={"id": user.id, "username": user.username}), 201

    @app.post("/api/login")
    def api_login() -> Any:
        body = request.get_json()
        user = authenticate(body["username"], body["password"])
        login_user(user, remember=bool(body.get("remember")))
        return jsonify(user={"id": user.id, "username": user.username})

    @app.post("/api/logout")
    def api_logout() -> Any:
        logout_user()
        return "", 204

    @app.get("/api/me")
    @login_required
    def api_me() -> Any:
        return jsonify(
            user={
                "id": current_user.id,
                "username": current_user.username,
                "roles": list(current_user.roles),
            }
        )

    @app.get("/account")
    @login_required
    def account() -> str:
        return f"hello {current_user.username}"

    @app.get("/admin")
    @roles_required("admin")
    def admin() -> str:
        return "admin area"

    @app.post("/api/password")
    @login_required
    def api_password() -> Any:
        body = request.get_json()
        change_password(body["current_password"], body["new_password"])
        return "", 204

    @app.post("/change")
    def change() -> Any:
        state["changes"] += 1
        session["changed"] = state["changes"]
        return jsonify(changes=state["changes"])

    @app.get("/changes")
    def changes() -> Any:
        return jsonify(changes=state["changes"])

    @app.post("/hook")
    @csrf_exempt
    def hook() -> str:
        return "exempt"

    @app.get("/go")
    def go() -> str:
        return safe_next(request.args.get("next"))

    @app.get("/form")
    def form() -> str:
        from flask import render_template_string

        return render_template_string(
            '<form method=post><input name=csrf_token value="{{ csrf_token() }}"></form>'
        )

    return app


class Browser:
    """A same-origin browser-like client: cookies, Origin, Sec-Fetch-Site."""

    origin = "https://localhost"

    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = https_client(app)
        self.token: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Origin": self.origin, "Sec-Fetch-Site": "same-origin", **extra}
        if self.token:
            headers["X-CSRF-Token"] = self.token
        return headers

    def csrf(self) -> str:
        self.token = self.client.get("/api/csrf").json["csrf_token"]  # type: ignore[index]
        return self.token

    def post(self, path: str, json: Any = None, **headers: str) -> TestResponse:
        return self.client.post(path, json=json, headers=self.headers(**headers))

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def register(self, username: str, password: str = PASSWORD) -> TestResponse:
        self.csrf()
        response = self.post("/api/register", {"username": username, "password": password})
        self.csrf()
        return response

    def login(self, username: str, password: str = PASSWORD, **body: Any) -> TestResponse:
        self.csrf()
        response = self.post("/api/login", {"username": username, "password": password, **body})
        if response.status_code == 200:
            self.csrf()
        return response

    def cookie(self, name: str) -> str | None:
        cookie = self.client.get_cookie(name, domain="localhost")
        return cookie.value if cookie is not None else None
