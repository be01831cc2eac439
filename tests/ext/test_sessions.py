"""Server-side sessions through Flask's ``session``, on every store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, session

from coatcheck import CoatCheck, SessionError, current_session
from coatcheck.core.clock import ManualClock
from coatcheck.core.ids import is_session_id, store_key
from coatcheck.stores.base import SessionStore, open_store

from .helpers import CountingStore, count_records, https_client, set_cookies

COOKIE = "__Host-session"


def add_views(app: Flask) -> Flask:
    cc = CoatCheck()  # the methods act on the current app

    @app.get("/write/<key>/<value>")
    def write(key: str, value: str) -> Any:
        session[key] = value
        return jsonify(dict(session))

    @app.get("/read")
    def read() -> Any:
        return jsonify(dict(session))

    @app.get("/peek")
    def peek() -> str:
        return "no session used"

    @app.get("/login/<user_id>")
    def login(user_id: str) -> str:
        current_session().user_id = user_id
        cc.rotate()
        return "logged in"

    @app.get("/rotate")
    def rotate() -> str:
        cc.rotate()
        return "rotated"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "cleared"

    @app.get("/destroy")
    def destroy() -> str:
        cc.destroy()
        return "destroyed"

    @app.get("/permanent")
    def permanent() -> str:
        session.permanent = True
        return "permanent"

    @app.get("/handle")
    def handle() -> Any:
        return jsonify(handle=current_session().handle)

    return app


@pytest.fixture
def counting(any_store_url: str, clock: ManualClock) -> CountingStore:
    return CountingStore(open_store(any_store_url, clock=clock))


@pytest.fixture
def app(make_app: Callable[..., Flask], counting: CountingStore) -> Flask:
    return add_views(make_app(store=counting))


def session_cookie(response: Any) -> str | None:
    for cookie in set_cookies(response):
        if cookie.name == COOKIE:
            return cookie.value
    return None


# -- the cookie ----------------------------------------------------------------


def test_cookie_has_the_spec_attributes(app: Flask) -> None:
    response = https_client(app).get("/write/a/1")
    [cookie] = set_cookies(response)
    assert cookie.name == "__Host-session"
    assert is_session_id(cookie.value) and len(cookie.value) == 43
    assert cookie.attributes == {"secure": "", "httponly": "", "path": "/", "samesite": "Lax"}


@pytest.mark.parametrize("samesite", ["Strict", "Lax", "None"])
def test_samesite_is_configurable(make_app: Callable[..., Flask], samesite: str) -> None:
    app = add_views(make_app(COATCHECK_COOKIE_SAMESITE=samesite))
    [cookie] = set_cookies(https_client(app).get("/write/a/1"))
    assert cookie.attributes["samesite"] == samesite


def test_insecure_mode_is_explicit_and_loud(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = add_views(make_app(COATCHECK_COOKIE_SECURE="false"))
    assert "COATCHECK_COOKIE_SECURE is off" in caplog.text
    [cookie] = set_cookies(app.test_client().get("/write/a/1", base_url="http://example.test"))
    assert cookie.name == "session"
    assert "secure" not in cookie.attributes
    assert cookie.attributes["httponly"] == "" and cookie.attributes["samesite"] == "Lax"


def test_permanent_session_gets_max_age(app: Flask) -> None:
    [cookie] = set_cookies(https_client(app).get("/permanent"))
    assert 43000 < int(cookie.attributes["max-age"]) <= 43200


def test_cookie_is_deleted_with_the_attributes_it_was_set_with(app: Flask) -> None:
    client = https_client(app)
    [created] = set_cookies(client.get("/write/a/1"))
    [deleted] = set_cookies(client.get("/clear"))
    assert deleted.name == created.name and deleted.value == ""
    assert deleted.attributes.pop("max-age") == "0"
    deleted.attributes.pop("expires")
    assert deleted.attributes == created.attributes


# -- anonymous visitors and the write discipline -------------------------------


def test_anonymous_requests_create_no_record(app: Flask, counting: CountingStore) -> None:
    counting.writes.clear()  # a shared store got the signing key's fingerprint at start
    client = https_client(app)
    for _ in range(100):
        assert client.get("/read").status_code == 200
        assert client.get("/peek").status_code == 200
    assert counting.writes == []
    assert count_records(counting) == 0
    assert client.get_cookie(COOKIE, domain="localhost") is None


def test_writing_creates_one_record(app: Flask, counting: CountingStore) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    assert count_records(counting) == 1
    assert client.get("/read").json == {"a": "1"}


def test_read_only_requests_write_only_a_touch_per_minute(
    app: Flask, counting: CountingStore, clock: ManualClock
) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    counting.writes.clear()
    reads_before = counting.reads
    for _ in range(100):  # 100 requests over 100 seconds
        clock.advance(1)
        response = client.get("/read")
        assert response.json == {"a": "1"}
        assert set_cookies(response) == []
    assert counting.writes == ["touch"]  # at t=60 s only
    assert counting.reads - reads_before == 100  # one store read per request


def test_modifying_request_writes_once(app: Flask, counting: CountingStore) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    counting.writes.clear()
    client.get("/write/b/2")
    assert counting.writes == ["save"]


# -- lifetimes -----------------------------------------------------------------


def test_idle_timeout(app: Flask, counting: CountingStore, clock: ManualClock) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    clock.advance(29 * 60)
    assert client.get("/read").json == {"a": "1"}  # touches: idle restarts
    clock.advance(29 * 60)
    assert client.get("/read").json == {"a": "1"}
    clock.advance(30 * 60)
    response = client.get("/read")
    assert response.json == {}
    assert count_records(counting) == 0  # the expired record was deleted
    [cleared] = set_cookies(response)
    assert cleared.attributes["max-age"] == "0"


def test_absolute_timeout(app: Flask, counting: CountingStore, clock: ManualClock) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    for _ in range(12 * 3 - 1):  # active every 20 minutes for 11 h 40 min
        clock.advance(20 * 60)
        assert client.get("/read").json == {"a": "1"}
    clock.advance(20 * 60)  # 12 h after creation
    assert client.get("/read").json == {}
    assert count_records(counting) == 0


def test_timeouts_are_configurable(make_app: Callable[..., Flask], clock: ManualClock) -> None:
    app = add_views(make_app(COATCHECK_IDLE_TIMEOUT="120", COATCHECK_ABSOLUTE_TIMEOUT=600))
    client = https_client(app)
    client.get("/write/a/1")
    clock.advance(119)
    assert client.get("/read").json == {"a": "1"}
    clock.advance(121)
    assert client.get("/read").json == {}


# -- rotation, destruction -----------------------------------------------------


def test_rotate_gives_a_new_id_and_kills_the_old(app: Flask, counting: CountingStore) -> None:
    client = https_client(app)
    old_id = session_cookie(client.get("/write/a/1"))
    old_handle = client.get("/handle").json["handle"]
    assert old_id is not None
    new_id = session_cookie(client.get("/rotate"))
    assert new_id is not None and new_id != old_id
    assert counting.inner.get(store_key(old_id)) is None
    assert count_records(counting) == 1
    assert client.get("/read").json == {"a": "1"}
    assert client.get("/handle").json["handle"] != old_handle
    # The old ID, replayed, is no session at all.
    replay = https_client(app)
    replay.set_cookie(COOKIE, old_id, domain="localhost")
    assert replay.get("/read").json == {}


def test_login_rotates_and_marks_responses_no_store(app: Flask) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    before = client.get("/read")
    assert "no-store" not in before.headers.get("Cache-Control", "")
    client.get("/login/42")
    after = client.get("/peek")  # even a view that never reads the session
    assert after.headers["Cache-Control"] == "no-store"
    assert "Cookie" in after.headers["Vary"]


def test_reading_the_session_varies_on_cookie(app: Flask) -> None:
    client = https_client(app)
    assert "Cookie" in client.get("/read").headers.get("Vary", "")
    assert "Cookie" not in client.get("/peek").headers.get("Vary", "")


def test_clear_deletes_the_record(app: Flask, counting: CountingStore) -> None:
    client = https_client(app)
    client.get("/write/a/1")
    client.get("/clear")
    assert count_records(counting) == 0


def test_destroy_deletes_the_record_and_the_cookie(app: Flask, counting: CountingStore) -> None:
    client = https_client(app)
    client.get("/login/7")
    response = client.get("/destroy")
    assert count_records(counting) == 0
    assert set_cookies(response)[0].attributes["max-age"] == "0"


def test_values_must_be_json(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.get("/bad")
    def bad() -> str:
        session["obj"] = object()
        return "?"

    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(SessionError, match="cannot be stored as JSON"):
        https_client(app).get("/bad")


def test_tagged_values_round_trip(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.get("/set")
    def set_values() -> str:
        session["t"] = (1, b"\x00bytes", {"nested": [1, 2]})
        return ""

    @app.get("/get")
    def get_values() -> str:
        return repr(session["t"])

    client = https_client(app)
    client.get("/set")
    assert client.get("/get").text == repr((1, b"\x00bytes", {"nested": [1, 2]}))


# -- concurrency -----------------------------------------------------------------


def test_concurrent_requests_keep_each_others_keys(
    make_app: Callable[..., Flask], any_store_url: str, clock: ManualClock
) -> None:
    app = make_app()
    both_loaded = threading.Barrier(2, timeout=10)

    @app.get("/slow-write/<key>")
    def slow_write(key: str) -> str:
        both_loaded.wait()  # both requests have loaded the record before either saves
        session[key] = key
        return key

    @app.get("/start")
    def start() -> str:
        session["start"] = True
        return ""

    client = https_client(app)
    client.get("/start")
    sid = client.get_cookie(COOKIE, domain="localhost")
    assert sid is not None
    statuses: list[int] = []

    def hit(key: str) -> None:
        other = https_client(app)
        other.set_cookie(COOKIE, sid.value, domain="localhost")
        statuses.append(other.get(f"/slow-write/{key}").status_code)

    threads = [threading.Thread(target=hit, args=(k,)) for k in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert statuses == [200, 200]
    record = CoatCheck.state(app).store.get(store_key(sid.value))
    assert record is not None
    assert set(record.data) == {"start", "left", "right"}


# -- secrets stay secret ---------------------------------------------------------


def test_the_session_id_appears_only_in_set_cookie(
    app: Flask, counting: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    client = https_client(app)
    with caplog.at_level(logging.DEBUG):
        response = client.get("/write/a/1")
        sid = session_cookie(response)
        assert sid is not None
        bodies = [response.text, client.get("/handle").text, client.get("/read").text]
    assert not any(sid in body for body in bodies)
    assert sid not in caplog.text
    record = counting.inner.get(store_key(sid))
    assert record is not None
    assert sid not in repr(record)


def test_unknown_store_in_config_fails_at_start(make_app: Callable[..., Flask]) -> None:
    from coatcheck import ConfigurationError

    with pytest.raises(ConfigurationError):
        make_app(COATCHECK_STORE_URL="nosuch://x")


def test_store_is_only_reached_through_the_store_api(app: Flask, counting: SessionStore) -> None:
    # The app's session interface uses exactly the store it was given.
    assert CoatCheck.state(app).store is counting
