"""A login that overlaps a revocation loses: no session, remember cookie or token family
it produces works, on SQLite, Redis and the memory store.

The login is held inside its password check (a gated hasher) while the
revocation runs to completion: the worst interleaving, every time, with no
sleep and no chance involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from coatcheck import CoatCheck, csrf_exempt, disable_user
from coatcheck.core.passwords import PasswordHasher
from coatcheck.ext import revoke_all_sessions, set_user_roles

from ..ext.auth_app import PASSWORD, Browser, build_auth_app

NEW_PASSWORD = "a brand new passphrase"


class GatedHasher(PasswordHasher):
    """A fast test hasher whose next verify waits until the test lets it go on."""

    def __init__(self) -> None:
        fast = PasswordHasher.fast_for_tests()
        self.__dict__.update(fast.__dict__)
        self.armed = False
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        if self.armed:
            self.armed = False
            self.inside.set()
            assert self.go_on.wait(timeout=20)
        return super().verify(password, password_hash)


@pytest.fixture
def gate() -> GatedHasher:
    return GatedHasher()


@pytest.fixture
def app(make_app: Callable[..., Flask], gate: GatedHasher) -> Iterator[Flask]:
    app = build_auth_app(make_app)
    CoatCheck.state(app).hasher = gate
    state = CoatCheck.state(app)
    state.users.create_user("admin", gate.hash(PASSWORD), roles=("admin",))
    state.users.create_user("alice", gate.hash(PASSWORD), roles=("admin",))

    @app.post("/api/token")
    @csrf_exempt  # sets no cookie
    def token() -> Any:
        from flask import jsonify, request

        from coatcheck import authenticate
        from coatcheck.ext import issue_tokens

        body = request.get_json()
        return jsonify(issue_tokens(authenticate(body["username"], body["password"])))

    @app.post("/api/token/refresh")
    @csrf_exempt
    def refresh() -> Any:
        from flask import jsonify, request

        from coatcheck.ext import refresh_tokens

        return jsonify(refresh_tokens(request.get_json()["refresh_token"]))

    yield app
    state.close()


def _revoke(app: Flask, change: str) -> None:
    """Run one revocation of alice (user 2) to completion, as an administrator would."""
    with app.test_request_context():
        if change == "disable":
            disable_user(2)
        elif change == "demote":
            set_user_roles(2, [])
        elif change == "revoke-all":
            revoke_all_sessions(2)
        elif change == "password":
            state = CoatCheck.state(app)
            state.users.set_password_hash(2, state.hasher.hash(NEW_PASSWORD))
            state.devices.revoke_everything("2")


CHANGES = ["disable", "demote", "password", "revoke-all"]


def _overlapping(app: Flask, gate: GatedHasher, change: str, login: Callable[[], Any]) -> Any:
    """Run ``login`` held inside its password check while ``change`` runs; return its result."""
    holder = Browser(app)
    if change == "password":
        assert holder.login("alice").status_code == 200  # the device that changes it
    result: list[Any] = []
    gate.armed = True
    worker = threading.Thread(target=lambda: result.append(login()))
    worker.start()
    assert gate.inside.wait(timeout=20), "the login never reached its password check"
    if change == "password":
        reply = holder.post(
            "/api/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert reply.status_code == 204
    else:
        _revoke(app, change)
    gate.go_on.set()  # the revocation has returned: now let the login finish
    worker.join(timeout=20)
    assert not worker.is_alive() and result
    return result[0]


def _works(reply: Any, change: str) -> bool:
    """Tell whether an /api/me answer shows privileges the revocation took away."""
    if reply.status_code != 200:
        return False
    # After a demotion a carried-over device may live on, but never as an admin.
    return change != "demote" or "admin" in reply.json["user"]["roles"]


@pytest.mark.parametrize("change", CHANGES)
def test_a_session_from_an_overlapping_login_is_dead(
    app: Flask, gate: GatedHasher, change: str
) -> None:
    browser = Browser(app)
    browser.csrf()
    reply = _overlapping(
        app,
        gate,
        change,
        lambda: browser.post("/api/login", {"username": "alice", "password": PASSWORD}),
    )
    assert reply.status_code in (200, 401)  # the login may see the change, or lose later
    assert not _works(browser.get("/api/me"), change)


@pytest.mark.parametrize("change", CHANGES)
def test_a_remember_cookie_from_an_overlapping_login_is_dead(
    app: Flask, gate: GatedHasher, change: str
) -> None:
    browser = Browser(app)
    browser.csrf()
    body = {"username": "alice", "password": PASSWORD, "remember": True}
    reply = _overlapping(app, gate, change, lambda: browser.post("/api/login", body))
    remember = browser.cookie("__Host-remember")
    if reply.status_code == 200:
        assert remember is not None
    returning = Browser(app)  # the same device after the browser forgot its session
    if remember is not None:
        returning.client.set_cookie("__Host-remember", remember, domain="localhost")
    assert not _works(returning.get("/api/me"), change)


@pytest.mark.parametrize("change", CHANGES)
def test_a_token_family_from_an_overlapping_login_is_dead(
    app: Flask, gate: GatedHasher, change: str
) -> None:
    client = app.test_client()
    body = {"username": "alice", "password": PASSWORD}
    reply = _overlapping(app, gate, change, lambda: client.post("/api/token", json=body))
    if reply.status_code != 200:
        return  # the login saw the change
    tokens = reply.json
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert not _works(client.get("/api/me", headers=headers), change)
    refreshed = client.post("/api/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    if refreshed.status_code == 200:
        again = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
        assert not _works(client.get("/api/me", headers=again), change)


def test_a_login_that_starts_after_the_revocation_sees_it(app: Flask) -> None:
    _revoke(app, "disable")
    assert Browser(app).login("alice").status_code == 401


def test_the_device_that_changes_the_password_stays_and_others_go(app: Flask) -> None:
    mine, other = Browser(app), Browser(app)
    assert mine.login("alice").status_code == 200
    assert other.login("alice").status_code == 200
    reply = mine.post("/api/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert reply.status_code == 204
    mine.csrf()
    assert mine.get("/api/me").status_code == 200
    assert other.get("/api/me").status_code == 401
