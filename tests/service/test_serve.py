"""``coatcheck serve`` over real HTTP: the SPEC's cookies, the CLI on the same instance."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from .served import HttpClient, serve, wait_for_workers, workers

PASSWORD = "correct horse battery"


def attributes(header: str) -> tuple[str, str, list[str]]:
    pair, *rest = (part.strip() for part in header.split(";"))
    name, _, value = pair.partition("=")
    return name, value, sorted(a.lower() for a in rest)


def test_serve_login_sets_the_spec_session_cookie(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    with serve(instance) as served:
        created = served.cli(
            "user", "create", "admin", "--admin", "--password-stdin", input=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        client = HttpClient(served.port)
        token_reply = client.request("GET", "/api/csrf")
        [csrf_cookie] = token_reply.set_cookies()
        assert attributes(csrf_cookie)[0] == "__Host-csrf"
        assert attributes(csrf_cookie)[2] == ["httponly", "path=/", "samesite=lax", "secure"]

        reply = client.login("admin", PASSWORD)
        assert reply.status == 200, reply.body
        [session_cookie] = [h for h in reply.set_cookies() if h.startswith("__Host-session=")]
        name, value, attrs = attributes(session_cookie)
        assert len(value) == 43
        assert attrs == ["httponly", "path=/", "samesite=lax", "secure"]
        me = client.request("GET", "/api/me")
        assert me.status == 200 and me.json["user"]["roles"] == ["admin"]
        assert value.encode() not in me.body
        assert (instance / "sessions.db").is_file() and (instance / "coatcheck.db").is_file()

        login_page = HttpClient(served.port).request(
            "GET", "/login", headers={"Accept": "text/html"}
        )
        assert login_page.status == 200 and b"<form" in login_page.body


def test_no_lessons(tmp_path: Path) -> None:
    with serve(tmp_path / "instance", "--no-lessons") as served:
        client = HttpClient(served.port)
        assert client.request("GET", "/lessons").status == 404
        assert client.request("GET", "/get").status == 404
        assert client.request("GET", "/inspect").status == 200


def test_two_workers_share_the_generated_secret(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    with serve(instance, "--workers", "2") as served:
        served.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
        client = HttpClient(served.port)
        assert client.login("alice", PASSWORD).status == 200
        # Whichever worker answers, the CSRF cookie signed by another verifies.
        for _ in range(10):
            assert client.request("POST", "/api/logout").status == 204
            assert client.login("alice", PASSWORD).status == 200
    assert (instance / "secret_key").stat().st_mode & 0o777 == 0o600


def test_two_workers_share_the_login_throttle_and_a_restart_keeps_it(tmp_path: Path) -> None:
    # The review: on the embedded default each worker kept its own counters in
    # memory (10 passwords checked where 5 are allowed), and a restart forgot them.
    instance = tmp_path / "instance"
    with serve(instance, "--workers", "2") as served:
        served.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
        statuses = [
            HttpClient(served.port).login("alice", "wrong password").status for _ in range(8)
        ]
        assert statuses == [401] * 5 + [429] * 3
    with serve(instance, "--workers", "2") as served:
        assert HttpClient(served.port).login("alice", PASSWORD).status == 429
    assert (instance / "throttle.db").stat().st_mode & 0o777 == 0o600


def test_serve_says_at_start_when_the_store_does_not_answer(tmp_path: Path) -> None:
    # A newcomer's report: `serve` started silently with Redis down.
    from ..conftest import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"
    instance = tmp_path / "instance"
    with serve(instance, COATCHECK_STORE_URL=down) as served:
        assert HttpClient(served.port).request("GET", "/healthz").status == 200
    log = next(tmp_path.glob("serve-*.log")).read_text()
    assert "WARNING: the session store at redis://127.0.0.1:" in log
    assert "answer 503 until it does" in log


def test_sighup_replaces_every_worker_without_dropping_a_request(tmp_path: Path) -> None:
    # gunicorn's graceful restart, kept: new workers start before the old ones stop.
    with serve(tmp_path / "instance", "--workers", "2") as served:
        served.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
        client = HttpClient(served.port)
        assert client.login("alice", PASSWORD).status == 200
        before = wait_for_workers(served.proc.pid, 2)
        statuses: list[int | str] = []
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                try:
                    statuses.append(HttpClient(served.port).request("GET", "/healthz").status)
                except OSError as exc:
                    statuses.append(type(exc).__name__)
                time.sleep(0.01)

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            os.kill(served.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 30
            while workers(served.proc.pid) & before or len(workers(served.proc.pid)) != 2:
                assert time.monotonic() < deadline, "the workers were not replaced"
                time.sleep(0.1)
        finally:
            stop.set()
            asker.join()
        assert statuses and set(statuses) == {200}
        assert client.request("GET", "/api/me").status == 200  # the session outlived its worker
