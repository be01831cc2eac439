"""Schemathesis against a real ``coatcheck serve``: every operation of ``/openapi.json``.

Each operation is fuzzed, with valid and invalid input and a fixed seed, in
three passes: as an anonymous browser (the double-submit CSRF cookie and its
token), with an admin's session cookie and CSRF token, and with an admin's
bearer token. Every response must be documented (status, content type, headers,
body) and none may be a 5xx or log a traceback.

Operations that end or replace the credentials they are called with (logout,
password change, revoking the other sessions, register, which logs the caller
in as the new user) get a user of their own in each authenticated pass, and no
admin operation may target the admin itself, so that the admin's credentials
stay good for the whole run: each pass must get past authentication and CSRF.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from coatcheck.service.openapi import build_document

from .served import HttpClient, Served, serve

PASSWORD = "correct horse battery"
SESSION_COOKIE = "__Host-session"
CSRF_COOKIE = "__Host-csrf"
#: Examples per operation and pass, valid and invalid input alike.
MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same examples on every run, so CI is stable
    database=None,
    deadline=timedelta(seconds=5),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded
    suppress_health_check=list(HealthCheck),
)
#: Operations that end or replace the credentials they are called with.
DESTRUCTIVE = {
    ("POST", "/api/logout"),
    ("POST", "/api/password"),
    ("DELETE", "/api/sessions"),
    ("POST", "/api/register"),
}
#: Errors that mean a pass's credentials did not work.
REFUSED = {"unauthenticated", "csrf_failed"}
PASSES = ("anonymous", "session", "bearer")
DOCUMENT = build_document(metrics=True)
OPERATIONS = [(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item]


def error_code(response: schemathesis.Response) -> str | None:
    """Return the ``error`` of an error response (``None`` for a success)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return "(a page)"
    return str(body.get("error")) if isinstance(body, dict) else "(not the error shape)"


@dataclass
class Credentials:
    """What a pass sends with every request, over what was generated."""

    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def apply(self, case: Case) -> None:
        own = {name.lower() for name in (*self.headers, "Authorization", "X-CSRF-Token")}
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in own}
        cookies = {
            k: v for k, v in (case.cookies or {}).items() if k not in (SESSION_COOKIE, CSRF_COOKIE)
        }
        case.headers = {**headers, **self.headers}
        case.cookies = {**cookies, **self.cookies}


def credentials(port: int, username: str, who: str) -> Credentials:
    """Return new credentials of ``username`` for pass ``who`` (anonymous: of nobody)."""
    client = HttpClient(port)
    if who == "anonymous":
        token = client.fetch_csrf()
        return Credentials(dict(client.cookies), {"X-CSRF-Token": token})
    if who == "bearer":
        reply = client.request("POST", "/api/token", {"username": username, "password": PASSWORD})
        assert reply.status == 200, reply.body
        return Credentials(headers={"Authorization": f"Bearer {reply.json['access_token']}"})
    assert client.login(username, PASSWORD).status == 200
    assert client.csrf is not None
    return Credentials(dict(client.cookies), {"X-CSRF-Token": client.csrf})


def sign_up(port: int, username: str, who: str) -> Credentials:
    """Register ``username``; return its credentials for pass ``who``."""
    client = HttpClient(port)
    client.fetch_csrf()
    reply = client.request("POST", "/api/register", {"username": username, "password": PASSWORD})
    assert reply.status == 201, reply.body
    return credentials(port, username, who)


@dataclass
class Fuzzed:
    """The running service, its schema, and the credentials of each pass."""

    served: Served
    schema: Any
    root_id: int
    credentials: dict[str, Credentials]
    _names: Iterator[int] = field(default_factory=count)

    def credentials_for(self, who: str, method: str, path: str) -> Credentials:
        if who == "anonymous" or (method, path) not in DESTRUCTIVE:
            return self.credentials[who]
        return sign_up(self.served.port, f"own.{who}.{next(self._names)}", who)

    def assert_working(self, who: str, creds: Credentials) -> None:
        """Check that the credentials of a pass still log in and pass the CSRF check."""
        client = HttpClient(self.served.port, cookies=dict(creds.cookies))
        if who != "anonymous":
            assert client.request("GET", "/api/me", headers=creds.headers).status == 200
        if who != "bearer":
            revoke = client.request("POST", "/api/token/revoke", {"token": "0" * 32}, creds.headers)
            assert revoke.status == 204, revoke.body


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    instance: Path = tmp_path_factory.mktemp("schemathesis") / "instance"
    # The fuzzer fails many logins from 127.0.0.1: that must not throttle every later one.
    # serve() logs to a file and fails the run if the server logged a traceback.
    with serve(
        instance,
        "--metrics",
        COATCHECK_THROTTLE_ADDRESS="100000/15 minutes",
        COATCHECK_THROTTLE_REGISTER="100000/hour",
    ) as served:
        for name in ("alice", "bobby"):  # users 1 and 2, for the admin operations
            sign_up(served.port, name, "anonymous")
        args = ("user", "create", "root", "--admin", "--password-stdin")
        created = served.cli(*args, input=PASSWORD)
        assert created.returncode == 0, created.stderr
        match = re.search(r"\(id (\d+)\)", created.stdout)
        assert match is not None, created.stdout
        passes = {who: credentials(served.port, "root", who) for who in PASSES}
        schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
        yield Fuzzed(served, schema, int(match.group(1)), passes)


@pytest.mark.parametrize("who", PASSES)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(
    fuzzed: Fuzzed, who: str, method: str, path: str
) -> None:
    operation = fuzzed.schema[path][method]
    creds = fuzzed.credentials_for(who, method, path)
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    errors: list[str | None] = []

    @FUZZ_SETTINGS
    @given(case=cases)
    def run(case: Case) -> None:
        if (case.path_parameters or {}).get("user_id") == fuzzed.root_id:
            reject()  # logging the admin out or changing its roles would end its session
        creds.apply(case)
        errors.append(error_code(case.call_and_validate(checks=CHECKS)))

    run()
    if who != "anonymous" and (method, path) in DESTRUCTIVE:
        assert set(errors) - REFUSED, errors  # the credentials worked until they were ended
    else:
        fuzzed.assert_working(who, creds)
