"""The README's nginx forward-auth recipe, run for real.

The snippet is read from README.md, so the documentation cannot drift from
what is tested. nginx runs it in front of a real ``coatcheck serve`` and a
tiny application that echoes the headers it receives: a client-sent
``X-Auth-*`` header must never reach the application, and the ones
``/auth/verify`` answered must.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import free_port, unavailable, wait_for_port
from ..proxies.harness import EchoApp, Seen
from ..proxies.harness import echo_app as start_echo_app
from .served import HttpClient, Served, serve

README = Path(__file__).parents[2] / "README.md"
PASSWORD = "correct horse battery"
#: How the README writes the addresses that a test run replaces.
LISTEN, COATCHECK, APPLICATION = "listen 443 ssl;", "http://127.0.0.1:5555", "http://127.0.0.1:8080"
#: Headers a client forges to pass for someone else (two spellings an app may fold).
FORGED = {
    "X-Auth-User": "mallory",
    "X-Auth-User-Id": "999",
    "X-Auth-Roles": "admin,superuser",
    "X-Auth-Anything": "forged",
    "x-auth-lower": "forged",
    "X_Auth_User_Id": "999",
}


def readme_recipe() -> str:
    """Return the nginx snippet of the README's forward-auth section."""
    section = README.read_text().split("### Forward auth", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```nginx\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the forward-auth section must hold exactly one nginx block"
    return str(blocks[0])


def local_recipe(nginx_port: int, coatcheck_port: int, app_port: int) -> str:
    """Return the README's snippet with this run's ports, and nothing else changed."""
    snippet = readme_recipe()
    assert snippet.count(LISTEN) == 1 and snippet.count(APPLICATION) == 1
    assert snippet.count(COATCHECK) >= 1
    return (
        snippet.replace(LISTEN, f"listen 127.0.0.1:{nginx_port};")
        .replace(COATCHECK, f"http://127.0.0.1:{coatcheck_port}")
        .replace(APPLICATION, f"http://127.0.0.1:{app_port}")
    )


@pytest.fixture
def echo_app() -> Iterator[EchoApp]:
    with start_echo_app("app") as app:
        yield app


@dataclass
class Stack:
    nginx_port: int
    served: Served
    app: EchoApp


@pytest.fixture
def stack(tmp_path: Path, echo_app: EchoApp) -> Iterator[Stack]:
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )
    if binary is None:
        unavailable("nginx is not installed (make nginx, or apt-get install nginx-light)")
    assert binary is not None
    instance = tmp_path / "instance"
    with serve(instance, COATCHECK_STORE_URL="memory://", COATCHECK_TRUSTED_PROXIES="1") as served:
        for args in (("alice", "--admin"), ("bobby",)):
            created = served.cli("user", "create", *args, "--password-stdin", input=PASSWORD)
            assert created.returncode == 0, created.stderr
        nginx_port = free_port()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        config = prefix / "nginx.conf"
        config.write_text(
            "daemon off;\n"
            "master_process off;\n"  # one process, running as this user
            f"pid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "    access_log off;\n"
            + "".join(
                f"    {kind}_temp_path {prefix}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + local_recipe(nginx_port, served.port, echo_app.port)
            + "}\n"
        )
        command = [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
        checked = subprocess.run(
            [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(nginx_port, proc)
            yield Stack(nginx_port, served, echo_app)
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def logged_in(stack: Stack, username: str) -> HttpClient:
    """Return a client of nginx with ``username``'s session cookie (logged in at coatcheck)."""
    direct = HttpClient(stack.served.port)
    assert direct.login(username, PASSWORD).status == 200
    return HttpClient(stack.nginx_port, cookies=dict(direct.cookies))


def user_id(stack: Stack, username: str) -> str:
    listed = stack.served.cli("user", "list")
    for line in listed.stdout.splitlines():
        columns = line.split()
        if len(columns) > 1 and columns[1] == username:
            return columns[0]
    raise AssertionError(listed.stdout)


def auth_headers(seen: Seen) -> dict[str, list[str]]:
    """Return every header the app got whose name reads as X-Auth-* (``_`` folded to ``-``)."""
    found: dict[str, list[str]] = {}
    for name, value in seen.headers:
        folded = name.lower().replace("_", "-")
        if folded.startswith("x-auth-"):
            found.setdefault(folded, []).append(value)
    return found


def test_the_readme_has_the_recipe() -> None:
    snippet = readme_recipe()
    assert "auth_request /auth/verify;" in snippet
    for name in ("x_auth_user", "x_auth_user_id", "x_auth_roles"):
        assert f"$upstream_http_{name};" in snippet


def test_an_anonymous_client_never_reaches_the_app(stack: Stack) -> None:
    client = HttpClient(stack.nginx_port)
    reply = client.request("GET", "/private/page?x=1", headers=FORGED)
    assert reply.status == 302
    assert reply.headers["Location"].endswith("/login?next=/private/page?x=1")
    assert stack.app.seen == []


def test_only_the_verified_identity_reaches_the_app(stack: Stack) -> None:
    client = logged_in(stack, "alice")
    reply = client.request("GET", "/private/page", headers=FORGED)
    assert reply.status == 200, reply.body
    [seen] = stack.app.seen
    assert auth_headers(seen) == {
        "x-auth-user": ["alice"],
        "x-auth-user-id": [user_id(stack, "alice")],
        "x-auth-roles": ["admin"],
    }


def test_a_user_without_roles_cannot_claim_any(stack: Stack) -> None:
    client = logged_in(stack, "bobby")
    reply = client.request("GET", "/", headers=FORGED)
    assert reply.status == 200, reply.body
    [seen] = stack.app.seen
    assert auth_headers(seen) == {
        "x-auth-user": ["bobby"],
        "x-auth-user-id": [user_id(stack, "bobby")],
    }


def test_forged_headers_sent_twice_do_not_get_through(stack: Stack) -> None:
    client = logged_in(stack, "bobby")
    # A dict of headers cannot hold a name twice: write the request by hand.
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    request = (
        "GET /twice HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{stack.nginx_port}\r\n"
        f"Cookie: {cookie}\r\n"
        "X-Auth-User-Id: 1\r\nX-Auth-User-Id: 1\r\n"
        "X-Auth-Roles: admin\r\nx-auth-roles: admin\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.nginx_port), timeout=20) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    [seen] = stack.app.seen
    assert auth_headers(seen) == {
        "x-auth-user": ["bobby"],
        "x-auth-user-id": [user_id(stack, "bobby")],
    }


def test_the_app_still_gets_what_it_needs(stack: Stack) -> None:
    client = logged_in(stack, "alice")
    reply = client.request(
        "POST", "/form", {"note": "hello"}, headers={"User-Agent": "test-agent/1.0"}
    )
    assert reply.status == 200, reply.body
    [seen] = stack.app.seen
    assert seen.method == "POST" and json.loads(seen.body) == {"note": "hello"}
    assert seen.values("Content-Type") == ["application/json"]
    assert seen.values("User-Agent") == ["test-agent/1.0"]
    assert seen.values("X-Forwarded-For") == ["127.0.0.1"]
    assert "__Host-session=" in seen.values("Cookie")[0]


def test_coatcheck_pages_pass_through_unprotected(stack: Stack) -> None:
    reply = HttpClient(stack.nginx_port).request("GET", "/login", headers={"Accept": "text/html"})
    assert reply.status == 200 and b"<form" in reply.body
    assert stack.app.seen == []
