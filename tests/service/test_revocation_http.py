"""Revocation wins over real HTTP: ``coatcheck serve --workers 2``, real Argon2 hashing.

Logins of a user are fired at both workers while an administrator disables,
demotes or logs the user out everywhere (or the user changes the password on
another device). Once the revocation has returned, nothing issued by a login
that started before that moment may work: not its session, not its remember
cookie, not its token family. Interleavings vary from run to run; the verdict
must hold for every one of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import TEST_SECRET_KEY
from .served import HttpClient, Served, serve

PASSWORD = "correct horse battery"
NEW_PASSWORD = "an entirely new passphrase"
# Logins racing each revocation, all in flight at once (the server runs 8 at a
# time). At most 4: the throttle holds a slot of the account's 5 for every
# attempt in flight, and the password change needs one of its own.
LOGINS = 4


def _create(served: Served, name: str, *flags: str) -> None:
    done = served.cli("user", "create", name, *flags, "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def _login(served: Served, name: str, how: str) -> tuple[float, float, dict[str, Any]]:
    """Log in (``cookie``: with remember-me; ``token``: for API tokens).

    Return when the login request started, when its answer came and what it got.
    """
    client = HttpClient(served.port)
    if how == "cookie":
        client.fetch_csrf()
    started = time.monotonic()
    if how == "cookie":
        body = {"username": name, "password": PASSWORD, "remember": True}
        reply = client.request("POST", "/api/login", body)
        got = {"cookies": dict(client.cookies) if reply.status == 200 else {}}
        return started, time.monotonic(), got
    body = {"username": name, "password": PASSWORD}
    tokens = client.request("POST", "/api/token", body)
    return started, time.monotonic(), {"tokens": tokens.json if tokens.status == 200 else None}


def _still_works(served: Served, got: dict[str, Any], demoted: bool) -> list[str]:
    """Return what of a login's results still grants what the revocation took away."""

    def grants(reply: Any) -> bool:
        if reply.status != 200:
            return False
        return not demoted or "admin" in reply.json["user"]["roles"]

    found = []
    cookies = got.get("cookies")
    if cookies:
        session = {k: v for k, v in cookies.items() if k == "session"}
        if grants(HttpClient(served.port, cookies=session).request("GET", "/api/me")):
            found.append("session")
        remember = {k: v for k, v in cookies.items() if k == "remember"}
        if remember and grants(HttpClient(served.port, cookies=remember).request("GET", "/api/me")):
            found.append("remember cookie")
    tokens = got.get("tokens")
    if tokens:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        if grants(HttpClient(served.port).request("GET", "/api/me", headers=bearer)):
            found.append("access token")
        refreshed = HttpClient(served.port).request(
            "POST", "/api/token/refresh", {"refresh_token": tokens["refresh_token"]}
        )
        if refreshed.status == 200:
            again = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
            if grants(HttpClient(served.port).request("GET", "/api/me", headers=again)):
                found.append("refreshed token")
    return found


def _race(
    served: Served,
    name: str,
    revoke: Callable[[], None],
    *,
    demoted: bool = False,
    changes_the_user: bool = True,
) -> None:
    """Race logins of ``name`` against ``revoke``; check the verdict.

    A revocation that changes the user (disable, roles, password) must beat
    every login that started before it returned: such a login either saw the
    change or was born under the old stamp. Logging out everywhere changes
    nothing a login reads, so a login whose request a busy worker took up only
    after the revocation is a new login; there the verdict covers every login
    answered before the revocation was asked for (the in-process tests hold a
    login inside its password check for the exact interleaving).
    """
    results: list[tuple[float, float, dict[str, Any]]] = []
    lock = threading.Lock()

    def one(how: str) -> None:
        outcome = _login(served, name, how)
        with lock:
            results.append(outcome)

    # Logins long done before the revocation must end with it too.
    before = [_login(served, name, how)[2] for how in ("cookie", "token")]
    threads = [
        threading.Thread(target=one, args=("cookie" if i % 2 else "token",)) for i in range(LOGINS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.03)  # let the logins reach their password checks (timing, not the verdict)
    sent = time.monotonic()
    revoke()
    returned = time.monotonic()
    for thread in threads:
        thread.join(timeout=60)
    if changes_the_user:
        overlapping = [got for started, _, got in results if started < returned]
    else:
        overlapping = [got for _, answered, got in results if answered < sent]

    for got in before + overlapping:
        assert _still_works(served, got, demoted) == []


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_no_overlapping_login_survives_a_revocation(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    env = {"SECRET_KEY": TEST_SECRET_KEY, "COATCHECK_COOKIE_SECURE": "false"}
    if kind == "redis":
        env["COATCHECK_STORE_URL"] = request.getfixturevalue("redis_url")
    with serve(tmp_path / "instance", "--workers", "2", **env) as served:
        _create(served, "root", "--admin")
        for name in ("dora", "demi", "reva", "pat"):
            _create(served, name, "--admin")
        admin = HttpClient(served.port)
        assert admin.login("root", PASSWORD).status == 200
        ids = {
            u["username"]: u["id"] for u in admin.request("GET", "/api/admin/users").json["users"]
        }

        def disable() -> None:
            done = served.cli("user", "disable", "dora")
            assert done.returncode == 0, done.stderr

        def demote() -> None:
            reply = admin.request("POST", f"/api/admin/users/{ids['demi']}/roles", {"roles": []})
            assert reply.status == 200

        def revoke_all() -> None:
            assert admin.request("DELETE", f"/api/admin/users/{ids['reva']}/sessions").status == 204

        own = HttpClient(served.port)
        assert own.login("pat", PASSWORD).status == 200

        def change_password() -> None:
            body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
            assert own.request("POST", "/api/password", body).status == 204

        _race(served, "dora", disable, demoted=False)
        _race(served, "demi", demote, demoted=True)
        _race(served, "reva", revoke_all, changes_the_user=False)
        _race(served, "pat", change_password, demoted=False)
        assert own.request("GET", "/api/me").status == 200  # the device that changed it stays
