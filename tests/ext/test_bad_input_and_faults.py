"""Garbage cookies are no session; an unreachable store fails closed (503)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, session

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import new_session_id

from ..conftest import TEST_SECRET_KEY, PrivateRedis
from .helpers import count_records, https_client, set_cookies

COOKIE = "__Host-session"


def add_views(app: Flask) -> Flask:
    @app.get("/read")
    def read() -> Any:
        return jsonify(dict(session))

    @app.get("/api/read")
    def api_read() -> Any:
        return jsonify(dict(session))

    @app.get("/write")
    def write() -> Any:
        session["n"] = session.get("n", 0) + 1
        return jsonify(dict(session))

    @app.get("/public")
    def public() -> str:
        return "public"

    return app


GARBAGE = [
    "",
    "x",
    "a" * 42,
    "a" * 44,
    "a" * 42 + "!",
    "a" * 42 + "=",
    "A" * 4096,
    "A" * 100_000,
    "%00" * 20,
    '"' + "a" * 43 + '"',
    "\u00e9" * 43,
    "../../../../etc/passwd",
    "' OR 1=1 --",
]


@pytest.mark.parametrize("value", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_cookie_is_no_session(make_app: Callable[..., Flask], value: str) -> None:
    app = add_views(make_app())
    client = https_client(app, use_cookies=False)
    response = client.get("/read", headers={"Cookie": f"{COOKIE}={value}"})
    assert response.status_code == 200
    assert response.json == {}


def test_non_utf8_cookie_header_is_no_session(make_app: Callable[..., Flask]) -> None:
    app = add_views(make_app())
    raw = "__Host-session=\xff\xfe\xfd" + "\x80" * 40  # bytes as WSGI passes them (latin-1)
    client = https_client(app, use_cookies=False)
    response = client.get("/read", environ_overrides={"HTTP_COOKIE": raw})
    assert response.status_code == 200
    assert response.json == {}


def test_well_formed_unknown_id_is_no_session_and_is_cleared(
    make_app: Callable[..., Flask],
) -> None:
    app = add_views(make_app())
    client = https_client(app, use_cookies=False)
    response = client.get("/read", headers={"Cookie": f"{COOKIE}={new_session_id()}"})
    assert response.json == {}
    [cleared] = set_cookies(response)
    assert cleared.name == COOKIE and cleared.attributes["max-age"] == "0"


def test_a_garbage_cookie_is_replaced_on_write(make_app: Callable[..., Flask]) -> None:
    app = add_views(make_app())
    client = https_client(app, use_cookies=False)
    response = client.get("/write", headers={"Cookie": f"{COOKIE}=garbage"})
    assert response.json == {"n": 1}
    [issued] = set_cookies(response)
    assert issued.value != "garbage" and len(issued.value) == 43


def test_duplicated_session_cookie_is_no_session(make_app: Callable[..., Flask]) -> None:
    app = add_views(make_app())
    client = https_client(app)
    client.get("/write")
    cookie = client.get_cookie(COOKIE, domain="localhost")
    assert cookie is not None
    header = f"{COOKIE}={cookie.value}; {COOKIE}={new_session_id()}"
    fresh = https_client(app, use_cookies=False)
    assert fresh.get("/read", headers={"Cookie": header}).json == {}
    assert fresh.get("/read", headers={"Cookie": f"{COOKIE}={cookie.value}"}).json == {"n": 1}


# -- fail closed ------------------------------------------------------------------


@pytest.fixture
def redis_app(private_redis: PrivateRedis, tmp_path: Path, clock: ManualClock) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["COATCHECK_STORE_URL"] = private_redis.url
    app.config["SECRET_KEY"] = TEST_SECRET_KEY
    CoatCheck(app, clock=clock)
    return add_views(app)


def test_stopped_redis_fails_closed(redis_app: Flask, private_redis: PrivateRedis) -> None:
    client = https_client(redis_app)
    assert client.get("/write").json == {"n": 1}
    private_redis.stop()

    api = client.get("/api/read")
    assert api.status_code == 503
    assert api.json is not None and api.json["error"] == "store_unavailable"
    assert api.headers["Retry-After"]

    page = client.get("/read", headers={"Accept": "text/html"})
    assert page.status_code == 503
    assert page.mimetype == "text/html" and "Traceback" not in page.text

    # Even a view that never reads the session is not served to the session's owner.
    assert client.get("/public").status_code == 503


def test_stopped_redis_refuses_new_sessions(redis_app: Flask, private_redis: PrivateRedis) -> None:
    private_redis.stop()
    client = https_client(redis_app)
    assert client.get("/public").status_code == 200  # anonymous, no store needed
    response = client.get("/write", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "store_unavailable"
    assert set_cookies(response) == []


def test_broken_sqlite_file_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.write_bytes(b"this is not a database" * 100)
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["COATCHECK_STORE_URL"] = f"sqlite:///{path}"
    app.config["SECRET_KEY"] = TEST_SECRET_KEY
    CoatCheck(app)
    add_views(app)
    client = https_client(app)
    response = client.get("/write", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json is not None and response.json["error"] == "store_unavailable"
    assert count_records_safe(app) is None


def count_records_safe(app: Flask) -> int | None:
    try:
        return count_records(CoatCheck.state(app).store)
    except Exception:
        return None
