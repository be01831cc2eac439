"""Concurrency on one session and across processes, on SQLite and on Redis.

- Twenty requests on one session, each setting its own key, all loaded before
  any saves: every key is there afterwards (no last-write-wins).
- Two ``coatcheck serve`` processes on one instance folder: users log in and
  revoke each other's devices at once. Afterwards each session answers the
  same on both, every session listed in ``/api/sessions`` works, every revoked
  one is refused (401), and nothing answered 5xx.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, session

from coatcheck import CoatCheck
from coatcheck.core.ids import store_key

from ..conftest import TEST_SECRET_KEY
from ..ext.helpers import https_client
from ..service.served import Served, serve
from .traffic import HttpClient, error_code, handle_of, login, register

COOKIE = "__Host-session"
THREADS = 20


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_twenty_requests_on_one_session_keep_every_key(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    all_loaded = threading.Barrier(THREADS, timeout=20)

    @app.get("/start")
    def start() -> str:
        session["start"] = "yes"
        return ""

    @app.get("/key/<name>")
    def set_key(name: str) -> Any:
        seen = sorted(session)  # the session is loaded now
        all_loaded.wait()  # ... by every request, before any of them saves
        session[name] = name
        if name.endswith("0"):
            session.pop("start", None)  # one of them deletes a key too
        return jsonify(seen=seen)

    client = https_client(app)
    client.get("/start")
    sid = client.get_cookie(COOKIE, domain="localhost")
    assert sid is not None
    statuses: list[int] = []

    def hit(name: str) -> None:
        other = https_client(app)
        other.set_cookie(COOKIE, sid.value, domain="localhost")
        statuses.append(other.get(f"/key/{name}").status_code)

    names = [f"key{n}" for n in range(THREADS)]
    threads = [threading.Thread(target=hit, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * THREADS
    record = CoatCheck.state(app).store.get(store_key(sid.value))
    assert record is not None
    assert set(record.data) == set(names)  # "start" deleted by key0, every key kept


USERS = [f"ring-{n}" for n in range(5)]
DEVICES = 4
REVOCATION_ANSWERS = {(204, None), (401, "unauthenticated"), (403, "csrf_failed")}


def device_on(client: HttpClient, served: Served) -> HttpClient:
    """Return ``client``'s session, as sent to another server."""
    return HttpClient(served.port, cookies=dict(client.cookies), csrf=client.csrf)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_parallel_logins_and_revocations_across_two_servers(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    env = {"SECRET_KEY": TEST_SECRET_KEY}
    if store == "redis":
        env["COATCHECK_STORE_URL"] = request.getfixturevalue("redis_url")
    instance = tmp_path / "instance"
    with (
        serve(instance, "--workers", "2", **env) as a,
        serve(instance, "--workers", "2", **env) as b,
    ):
        servers = (a, b)
        owners = {user: register(a.port, user) for user in USERS}
        clients: dict[tuple[str, int], HttpClient] = {}
        handles: dict[tuple[str, int], str] = {}
        revocations: dict[tuple[str, int], tuple[int, str | None]] = {}
        late: dict[str, HttpClient] = {}
        failures: list[BaseException] = []
        everyone = threading.Barrier(len(USERS) * (DEVICES + 1), timeout=60)

        def device(user: str, n: int) -> None:
            try:
                client = login(servers[n % 2].port, user)
                clients[user, n] = client
                handles[user, n] = handle_of(client)
                everyone.wait()  # everyone is logged in: revoke the next device of the ring
                target = handles[user, (n + 1) % DEVICES]
                revoker = device_on(client, servers[(n + 1) % 2])
                reply = revoker.request("DELETE", f"/api/sessions/{target}")
                revocations[user, n] = (reply.status, error_code(reply))
            except BaseException as exc:
                failures.append(exc)
                raise

        def newcomer(user: str) -> None:
            try:
                everyone.wait()
                late[user] = login(b.port, user)  # logging in while the others revoke
            except BaseException as exc:
                failures.append(exc)
                raise

        threads = [
            threading.Thread(target=device, args=(user, n))
            for user in USERS
            for n in range(DEVICES)
        ] + [threading.Thread(target=newcomer, args=(user,)) for user in USERS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures and not any(t.is_alive() for t in threads)

        for user in USERS:
            revoked = set()
            for n in range(DEVICES):
                # 403 (its CSRF token is bound to its session) or 401: this
                # device had been revoked before its own revocation ran.
                assert revocations[user, n] in REVOCATION_ANSWERS
                if revocations[user, n][0] == 204:
                    revoked.add(handles[user, (n + 1) % DEVICES])
            alive = {handle_of(owners[user]), handle_of(late[user])}
            for n in range(DEVICES):
                answers = {
                    server.port: device_on(clients[user, n], server).request("GET", "/api/me")
                    for server in servers
                }
                statuses = {reply.status for reply in answers.values()}
                expected = 401 if handles[user, n] in revoked else 200
                assert statuses == {expected}, (user, n, statuses)
                if expected == 200:
                    alive.add(handles[user, n])
            for server in servers:
                listing = device_on(owners[user], server).request("GET", "/api/sessions")
                assert listing.status == 200
                listed = {s["handle"] for s in listing.json["sessions"]}
                assert listed == alive, (user, server.port)
