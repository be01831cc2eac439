"""Traffic from threads against a served coatcheck, with every exchange recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..service.served import HttpClient as ServedClient
from ..service.served import Reply

PASSWORD = "correct horse battery"

Step = Callable[[], Reply]


@dataclass
class HttpClient(ServedClient):
    """The service tests' client, with more patience for a loaded server."""

    timeout: float = 30


@dataclass(frozen=True)
class Exchange:
    """One request and what came back: a status, or a failure to get one."""

    label: str
    started: float
    ended: float
    status: int | None
    error: str | None
    content_type: str
    failure: str = ""

    def within(self, start: float, end: float) -> bool:
        """Tell whether the whole exchange happened between ``start`` and ``end``."""
        return start <= self.started and self.ended <= end


class Traffic:
    """Threads that each repeat their steps until stopped, recording every exchange."""

    def __init__(self, pause: float = 0.02) -> None:
        self.pause = pause
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, steps: Iterable[tuple[str, Step]]) -> None:
        """Start a thread sending ``steps`` (label, request) round and round."""
        thread = threading.Thread(target=self._run, args=(list(steps),), daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 40) -> list[Exchange]:
        """Let each thread finish its request in flight; return every exchange."""
        if self._stop.is_set():
            return list(self.exchanges)
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "a request never finished"
        return list(self.exchanges)

    def wait_for_each(self, labels: set[str], since: float, timeout: float) -> None:
        """Wait until every label has an exchange that started at ``since`` or later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = {e.label for e in self.exchanges if e.started >= since}
            if seen >= labels:
                return
            time.sleep(0.05)

    def __enter__(self) -> Traffic:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._stop.is_set():
            self.stop()

    def _run(self, steps: list[tuple[str, Step]]) -> None:
        while not self._stop.is_set():
            for label, step in steps:
                if self._stop.is_set():
                    return
                self._record(label, step)
                time.sleep(self.pause)

    def _record(self, label: str, step: Step) -> None:
        started = time.monotonic()
        try:
            reply = step()
        except Exception as exc:  # no answer at all: recorded, and judged by the test
            exchange = Exchange(label, started, time.monotonic(), None, None, "", repr(exc))
        else:
            exchange = Exchange(
                label,
                started,
                time.monotonic(),
                reply.status,
                error_code(reply),
                reply.headers.get("Content-Type", ""),
            )
        with self._lock:
            self.exchanges.append(exchange)


def error_code(reply: Reply) -> str | None:
    """Return the ``error`` of a JSON error body, if that is what ``reply`` is."""
    if not reply.headers.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        body = reply.json
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def register(port: int, username: str) -> HttpClient:
    """Create ``username`` through the API; return its logged-in client."""
    client = HttpClient(port)
    client.fetch_csrf()
    reply = client.request("POST", "/api/register", {"username": username, "password": PASSWORD})
    assert reply.status == 201, reply.body
    client.fetch_csrf()
    return client


def login(port: int, username: str) -> HttpClient:
    """Return a new client logged in as ``username``."""
    client = HttpClient(port)
    reply = client.login(username, PASSWORD)
    assert reply.status == 200, reply.body
    return client


def get(client: HttpClient, path: str, **headers: str) -> Step:
    return lambda: client.request("GET", path, headers=headers)


def replay(port: int, cookies: dict[str, str], path: str) -> Step:
    """Return a step sending ``cookies`` as they are now, whatever the answers say."""
    kept = dict(cookies)
    return lambda: HttpClient(port, cookies=dict(kept)).request("GET", path)


def login_attempt(port: int, username: str) -> Step:
    """Return a step logging in a new client: the CSRF token first, then the login."""

    def step() -> Reply:
        client = HttpClient(port)
        token = client.request("GET", "/api/csrf")
        if token.status != 200:
            return token
        client.csrf = token.json["csrf_token"]
        return client.request("POST", "/api/login", {"username": username, "password": PASSWORD})

    return step


def anonymous_write(port: int) -> Step:
    """Return a step by a new visitor to the lesson that writes to the session."""
    return lambda: HttpClient(port).request("GET", "/sessions/hello")


def handle_of(client: HttpClient) -> str:
    reply = client.request("GET", "/api/me")
    assert reply.status == 200, reply.body
    handle: str = reply.json["session"]["handle"]
    return handle
