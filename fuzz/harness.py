"""What the atheris targets share: apps built once per process, and the checks.

Import it inside ``atheris.instrument_imports()`` so that coatcheck is
imported, and instrumented, there. Nothing here depends on ``tests/``: the
fuzzing virtualenv has atheris and the project, not the test suite.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from typing import Any

from flask import Flask, jsonify, request, session
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck import (
    CoatCheck,
    authenticate,
    create_user,
    csrf_token,
    current_user,
    login_required,
    login_user,
)
from coatcheck.core.clock import ManualClock
from coatcheck.core.csrf import new_secret
from coatcheck.core.ids import store_key
from coatcheck.core.passwords import PasswordHasher
from coatcheck.stores.base import SessionStore

SECRET_KEY = "fuzz-secret-key-0123456789abcdef"  # noqa: S105 - a throwaway test key
SESSION = "__Host-session"
REMEMBER = "__Host-remember"
CSRF = "__Host-csrf"
#: The ID of the one live session of :func:`library_app`.
LIVE_ID = "fuzzLiveSession-0123456789_abcdefghijklmnop"
LIVE_USER_ID = "7"
PASSWORD = "correct horse battery"  # noqa: S105 - a test user's password
BASE = "https://localhost"

# Thousands of requests a second: keep warnings (refused CSRF...) out of the log.
logging.disable(logging.WARNING)


def _workdir() -> str:
    path = tempfile.mkdtemp(prefix="coatcheck-fuzz-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class HttpsClient(FlaskClient):
    """A test client whose requests go to https://localhost (Secure cookies round-trip)."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("base_url", BASE)
        return super().open(*args, **kwargs)


def client(app: Flask, *, use_cookies: bool = True) -> HttpsClient:
    """Return an HTTPS test client; without cookies, a raw ``Cookie`` header is sent as is."""
    return HttpsClient(app, app.response_class, use_cookies=use_cookies)


def library_app() -> Flask:
    """Return a small app using coatcheck, with one live session (:data:`LIVE_ID`)."""
    path = _workdir()
    app = Flask("coatcheck_fuzz", instance_path=path)
    app.config.update(
        TESTING=True,  # exceptions reach the fuzzer instead of becoming 500 pages
        SECRET_KEY=SECRET_KEY,
        COATCHECK_STORE_URL="memory://",
        COATCHECK_DATABASE_URL=f"sqlite:///{path}/users.db",
    )
    CoatCheck(app, clock=ManualClock(), hasher=PasswordHasher.fast_for_tests())

    @app.get("/read")
    def read() -> Any:
        return jsonify(data=dict(session), user=current_user.id)

    @app.post("/change")
    def change() -> Any:
        session["changed"] = True
        return jsonify(changed=True)

    @app.get("/api/me")
    @login_required
    def me() -> Any:
        return jsonify(user=current_user.id)

    @app.get("/api/csrf")
    def api_csrf() -> Any:
        return jsonify(csrf_token=csrf_token())

    @app.post("/api/login")
    def api_login() -> Any:
        body = request.get_json()
        user = authenticate(body["username"], body["password"])
        login_user(user, remember=True)
        return jsonify(user=user.id)

    state = CoatCheck.state(app)
    state.store.save(
        state.lifetimes.new_record(
            store_key(LIVE_ID),
            state.clock(),
            user_id=LIVE_USER_ID,
            data={"marker": '"live"'},
            meta={"username": "fuzzer", "roles": [], "csrf": new_secret()},
        )
    )
    with app.test_request_context():
        create_user("remembered", PASSWORD)
    return app


def service_app() -> Flask:
    """Return the coatcheck service on a fresh instance (memory store, fast hashing)."""
    from coatcheck.service import create_app

    path = _workdir()
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": SECRET_KEY,
            "COATCHECK_INSTANCE": f"{path}/instance",
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{path}/users.db",
        }
    )
    CoatCheck.state(app).hasher = PasswordHasher.fast_for_tests()
    return app


def count_records(store: SessionStore) -> int:
    """Return how many records ``store`` holds (a small store: the fuzz apps' own)."""
    return len(store.list_all(100_000))


def csrf_headers(browser: FlaskClient) -> dict[str, str]:
    """Fetch a CSRF token for ``browser``; return the headers a same-origin page sends."""
    token = browser.get("/api/csrf").get_json()["csrf_token"]
    return {"X-CSRF-Token": token, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}


def check(condition: bool, message: str, *details: Any) -> None:
    """Raise :class:`AssertionError` (a crash for atheris) unless ``condition`` holds."""
    if not condition:
        raise AssertionError(f"{message}: {details!r}"[:2000])


def check_no_server_error(response: TestResponse, *details: Any) -> None:
    """Crash on a 5xx."""
    check(response.status_code < 500, f"status {response.status_code}", *details)


def check_error_shape(response: TestResponse, *details: Any) -> None:
    """Crash on a 5xx, or a 4xx whose body is not ``{"error", "message"}``."""
    check_no_server_error(response, *details)
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        check(
            isinstance(body, dict)
            and set(body) == {"error", "message"}
            and all(isinstance(v, str) for v in body.values()),
            "error body not {error, message}",
            response.status_code,
            body,
            *details,
        )
