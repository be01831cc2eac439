"""A real ``coatcheck serve`` on a free port, and a small HTTP client with a cookie jar."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..conftest import free_port, wait_for_port

CLI = Path(sys.executable).parent / "coatcheck"


def service_env(**extra: str) -> dict[str, str]:
    """Return this environment without COATCHECK_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATCHECK_")}
    env.pop("SECRET_KEY", None)
    env.update(extra)
    return env


@dataclass
class Served:
    port: int
    instance: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``coatcheck ARGS --instance <this instance>``."""
        return subprocess.run(
            [str(CLI), *args, "--instance", str(self.instance)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )


@contextmanager
def serve(instance: Path, *args: str, **env: str) -> Iterator[Served]:
    """Start ``coatcheck serve`` and stop it afterwards; no traceback may be logged."""
    port = free_port()
    environ = service_env(**env)
    instance.mkdir(parents=True, exist_ok=True)
    log = instance.parent / f"serve-{port}.log"  # a file: a pipe would fill up and block
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port), "--instance", str(instance), *args],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc)
        yield Served(port, instance, environ, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        stderr = log.read_bytes()
        assert b"Traceback" not in stderr, stderr.decode(errors="replace")


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def set_cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class HttpClient:
    """Speak HTTP to a server like a browser would: cookies, Origin, CSRF header."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None
    timeout: float = 20

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        sent = {"Origin": f"http://127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf and method not in ("GET", "HEAD"):
            sent["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            try:
                reply = Reply(response.status, response.headers, response.read())
            finally:
                response.close()  # also when a killed worker breaks the answer off
        finally:
            conn.close()
        for header in reply.set_cookies():
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            if "max-age=0" in attributes.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return reply

    def fetch_csrf(self) -> str:
        self.csrf = self.request("GET", "/api/csrf").json["csrf_token"]
        return self.csrf

    def login(self, username: str, password: str) -> Reply:
        self.fetch_csrf()
        reply = self.request("POST", "/api/login", {"username": username, "password": password})
        if reply.status == 200:
            self.fetch_csrf()
        return reply


def workers(master: int) -> set[int]:
    """Return the pids of the children of ``master`` (the server's workers)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the task ended meanwhile
            continue
    return pids


def wait_for_workers(master: int, count: int, timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = workers(master)
        if len(found) == count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the server did not get back to {count} workers")
