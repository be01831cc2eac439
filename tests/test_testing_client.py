"""coatcheck.testing.LoginClient: a test client logged in, as Flask-Login's FlaskLoginClient."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from coatcheck import CoatCheck
from coatcheck.testing import LoginClient

from .ext.auth_app import PASSWORD, build_auth_app


def test_a_login_client_is_logged_in_and_can_post(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    state = CoatCheck.state(app)
    alice = state.users.create_user("alice", state.hasher.hash(PASSWORD), roles=("admin",))
    app.test_client_class = LoginClient
    client = app.test_client(user=alice)
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json == {"user": {"id": 1, "username": "alice", "roles": ["admin"]}}
    assert client.get("/admin").status_code == 200
    assert isinstance(client, LoginClient) and client.csrf_token
    posted = client.post("/change", headers={"X-CSRF-Token": client.csrf_token})
    assert posted.status_code == 200
    anonymous = app.test_client()
    assert anonymous.get("/api/me").status_code == 401


def test_a_login_client_can_be_remembered(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    state = CoatCheck.state(app)
    alice = state.users.create_user("alice", state.hasher.hash(PASSWORD))
    app.test_client_class = LoginClient
    client = app.test_client(user=alice, remember=True)
    assert client.get_cookie("__Host-remember", domain="localhost") is not None
    client.delete_cookie("__Host-session", domain="localhost")
    assert client.get("/api/me").status_code == 200  # logged in again by the remember cookie
