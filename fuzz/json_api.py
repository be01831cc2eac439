"""Fuzz the JSON bodies of the service API, with a valid CSRF token.

The first byte picks the endpoint and the Content-Type; the rest is the body.
Anonymous endpoints get a fresh client per input; the others are sent by a
logged-in admin. A crash is an exception, a 5xx, a 4xx whose body is not
``{"error", "message"}``, or a CSRF refusal (the token is always valid).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["coatcheck", "harness"]):
    import harness

    from coatcheck import CoatCheck

APP = harness.service_app()
STATE = CoatCheck.state(APP)
with APP.app_context():
    ADMIN_ID = STATE.users.create_user(
        "fuzzadmin", STATE.hasher.hash(harness.PASSWORD), roles=("admin",)
    ).id
    TARGET_ID = STATE.users.create_user("target", STATE.hasher.hash(harness.PASSWORD)).id

ANONYMOUS = [
    ("POST", "/api/register"),
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("POST", "/api/token"),
    ("POST", "/api/token/refresh"),
    ("POST", "/api/token/revoke"),
]
AS_ADMIN = [
    ("POST", "/api/password"),
    ("POST", f"/api/admin/users/{TARGET_ID}/roles"),
    ("POST", "/api/admin/users/999999/roles"),
    ("DELETE", "/api/sessions"),
    ("DELETE", "/api/sessions/0123456789abcdef0123456789abcdef"),
    ("DELETE", f"/api/admin/users/{TARGET_ID}/sessions"),
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/merge-patch+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]


class Admin:
    """A logged-in admin whose session and CSRF token are kept current."""

    def __init__(self) -> None:
        self.client = harness.client(APP)
        self.headers = harness.csrf_headers(self.client)
        response = self.client.post(
            "/api/login",
            json={"username": "fuzzadmin", "password": harness.PASSWORD},
            headers=self.headers,
        )
        harness.check(response.status_code == 200, "admin login", response.status)
        self.headers = harness.csrf_headers(self.client)

    def after(self, path: str, status: int) -> None:
        if path == "/api/password" and status == 204:  # the password changed, the session too
            with APP.app_context():
                STATE.users.set_password_hash(ADMIN_ID, STATE.hasher.hash(harness.PASSWORD))
            self.headers = harness.csrf_headers(self.client)


ADMIN = Admin()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    if not data:
        return
    endpoints = ANONYMOUS + AS_ADMIN
    method, path = endpoints[data[0] % len(endpoints)]
    content_type = CONTENT_TYPES[(data[0] // len(endpoints)) % len(CONTENT_TYPES)]
    body = data[1:]
    if (method, path) in ANONYMOUS:
        client = harness.client(APP)
        headers = harness.csrf_headers(client)
    else:
        client, headers = ADMIN.client, ADMIN.headers
    response = client.open(
        path, method=method, data=body, content_type=content_type, headers=headers
    )
    harness.check_error_shape(response, path, content_type, body[:200])
    if response.status_code == 403:
        error = response.get_json()["error"]
        harness.check(error != "csrf_failed", "CSRF refused a valid token", path, body[:200])
    if client is ADMIN.client:
        ADMIN.after(path, response.status_code)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
