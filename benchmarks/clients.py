"""Talk to an app in-process (Flask test client) or over HTTP, and log in.

Both clients keep no cookie jar of their own: :class:`Cookies` holds what the
app set and the caller sends it as a ``Cookie`` header, so the timed loops do
the same work for every app.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Protocol

from flask import Flask

from .common import BenchError, short

USERNAME = "benchuser"
PASSWORD = "quiet-Harbor-7-lantern-bench"  # noqa: S105 - the bench user's, throwaway
USER_AGENT = "coatcheck-benchmarks/1"
#: The apps set Secure cookies: the in-process client speaks "https".
BASE_URL = "https://localhost"


@dataclass
class Reply:
    """What the benchmark needs of a response."""

    status: int
    set_cookies: list[str]
    body: bytes
    #: The response's own header object (``.get(name)``, case-blind), not copied: free.
    headers: Any = None


class Requester(Protocol):
    #: The app's own address, sent as ``Referer`` on POST (Flask-WTF wants it on https).
    origin: str

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Reply: ...


class InProcess:
    """Requests through the Flask test client."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client(use_cookies=False)
        self.origin = BASE_URL

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Reply:
        response = self.client.open(
            path, method=method, base_url=BASE_URL, headers=headers, data=body
        )
        return Reply(
            response.status_code,
            response.headers.getlist("Set-Cookie"),
            response.data,
            response.headers,
        )


class OverHttp:
    """Requests over a new HTTP/1.1 connection to 127.0.0.1 each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"

    def __call__(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return Reply(
                response.status,
                response.headers.get_all("Set-Cookie") or [],
                response.read(),
                response.headers,
            )
        finally:
            conn.close()


class Cookies:
    """The cookies an app set, sent back by hand."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def update(self, set_cookies: list[str]) -> None:
        """Take the ``Set-Cookie`` headers of a response into account."""
        for line in set_cookies:
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(line)
            for name, morsel in parsed.items():
                if morsel.value and morsel["max-age"] not in ("0", 0):
                    self.values[name] = morsel.value
                else:
                    self.values.pop(name, None)

    def header(self) -> str:
        """Return the ``Cookie`` header value."""
        return "; ".join(f"{k}={v}" for k, v in self.values.items())


def headers(cookie: str | None = None, **extra: str) -> dict[str, str]:
    """Return the request headers every app gets: a user agent and maybe cookies."""
    out = {"User-Agent": USER_AGENT, **extra}
    if cookie:
        out["Cookie"] = cookie
    return out


def log_in(request: Requester, what: str) -> str:
    """Register the bench user (which logs in) and return the ``Cookie`` header.

    Checks that ``GET /api/me`` answers 200 with it, so a broken login is
    reported rather than measured as a fast 401.
    """
    jar = Cookies()
    reply = request("GET", "/api/csrf", headers())
    _expect(reply, 200, f"{what}: GET /api/csrf")
    jar.update(reply.set_cookies)
    token = str(json.loads(reply.body)["csrf_token"])
    body = json.dumps({"username": USERNAME, "password": PASSWORD}).encode()
    post_headers = headers(
        jar.header(),
        **{
            "Content-Type": "application/json",
            "Referer": f"{request.origin}/",
            "X-CSRF-Token": token,
            "X-CSRFToken": token,
        },
    )
    reply = request("POST", "/api/register", post_headers, body)
    _expect(reply, 201, f"{what}: POST /api/register")
    jar.update(reply.set_cookies)
    cookie = jar.header()
    _expect(request("GET", "/api/me", headers(cookie)), 200, f"{what}: GET /api/me")
    return cookie


def _expect(reply: Reply, status: int, what: str) -> None:
    if reply.status != status:
        raise BenchError(f"{what} answered {reply.status}: {short(reply.body)}")
