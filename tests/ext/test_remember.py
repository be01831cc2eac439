"""Remember-me: rotation at each use, theft detection, the race grace window."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock

from .auth_app import Browser, build_auth_app
from .helpers import https_client, set_cookies

REMEMBER = "__Host-remember"
SESSION = "__Host-session"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    app = build_auth_app(make_app)
    Browser(app).register("alice")
    return app


def remembered(app: Flask) -> Browser:
    browser = Browser(app)
    assert browser.login("alice", remember=True).status_code == 200
    return browser


def restart(browser: Browser) -> None:
    """Close the browser: its session cookie goes, the remember cookie stays."""
    browser.client.delete_cookie(SESSION, domain="localhost")


def test_remember_login_sets_a_long_lived_cookie(make_app: Callable[..., Flask]) -> None:
    app = build_auth_app(make_app)
    Browser(app).register("alice")
    browser = Browser(app)
    browser.csrf()
    response = browser.post(
        "/api/login", {"username": "alice", "password": "correct horse battery", "remember": True}
    )
    cookies = {c.name: c for c in set_cookies(response)}
    remember = cookies[REMEMBER]
    assert int(remember.attributes["max-age"]) == 30 * 24 * 3600
    assert {k: v for k, v in remember.attributes.items() if k not in ("max-age", "expires")} == {
        "secure": "",
        "httponly": "",
        "path": "/",
        "samesite": "Lax",
    }
    assert 0 < int(cookies[SESSION].attributes["max-age"]) <= 12 * 3600


def test_plain_login_has_no_remember_cookie_and_no_max_age(app: Flask) -> None:
    browser = Browser(app)
    browser.csrf()
    response = browser.post(
        "/api/login", {"username": "alice", "password": "correct horse battery"}
    )
    cookies = {c.name: c for c in set_cookies(response)}
    assert REMEMBER not in cookies
    assert "max-age" not in cookies[SESSION].attributes


def test_each_use_makes_a_new_session_and_rotates_the_token(app: Flask) -> None:
    browser = remembered(app)
    first = browser.cookie(REMEMBER)
    restart(browser)
    assert browser.get("/api/me").status_code == 200
    assert browser.cookie(SESSION) is not None
    second = browser.cookie(REMEMBER)
    assert second is not None and second != first
    restart(browser)
    assert browser.get("/api/me").status_code == 200
    assert browser.cookie(REMEMBER) not in (first, second)


def test_superseded_token_is_theft(app: Flask, clock: ManualClock) -> None:
    victim = remembered(app)
    stolen = victim.cookie(REMEMBER)
    assert stolen is not None
    restart(victim)
    assert victim.get("/api/me").status_code == 200  # the victim uses it: rotated
    clock.advance(31)
    thief = https_client(app)
    thief.set_cookie(REMEMBER, stolen, domain="localhost")
    assert thief.get("/api/me").status_code == 401
    # Everything of the user's is revoked: the victim's session and series too.
    assert victim.get("/api/me").status_code == 401
    restart(victim)
    assert victim.get("/api/me").status_code == 401
    events = [e.event for e in CoatCheck.state(app).users.list_events(limit=5)]
    assert "remember_token_theft" in events


def test_previous_token_within_the_grace_window_is_a_race(app: Flask, clock: ManualClock) -> None:
    browser = remembered(app)
    old = browser.cookie(REMEMBER)
    assert old is not None
    restart(browser)
    assert browser.get("/api/me").status_code == 200
    clock.advance(5)
    other_tab = https_client(app)
    other_tab.set_cookie(REMEMBER, old, domain="localhost")
    assert other_tab.get("/api/me").status_code == 200
    assert browser.get("/api/me").status_code == 200  # nobody was revoked


def test_logout_ends_the_series(app: Flask) -> None:
    browser = remembered(app)
    token = browser.cookie(REMEMBER)
    response = browser.post("/api/logout")
    assert REMEMBER in {c.name for c in set_cookies(response) if c.attributes.get("max-age") == "0"}
    replay = https_client(app)
    replay.set_cookie(REMEMBER, token or "", domain="localhost")
    assert replay.get("/api/me").status_code == 401


def test_expired_series_does_not_log_in(app: Flask, clock: ManualClock) -> None:
    browser = remembered(app)
    clock.advance(30 * 24 * 3600 + 1)
    restart(browser)
    assert browser.get("/api/me").status_code == 401


@pytest.mark.parametrize("value", ["", "garbage", "a.b", "x" * 5000, "eyJ.eyJ.sig", "\u00e9\u00e9"])
def test_garbage_remember_cookie_is_ignored(app: Flask, value: str) -> None:
    raw = https_client(app, use_cookies=False)
    response = raw.get("/api/me", headers={"Cookie": f"{REMEMBER}={value}"})
    assert response.status_code == 401


def test_remember_login_of_a_disabled_user_fails(app: Flask) -> None:
    from coatcheck import disable_user

    browser = remembered(app)
    restart(browser)
    with app.test_request_context():
        disable_user(1)
    assert browser.get("/api/me").status_code == 401


def test_a_remembered_user_is_the_new_sessions_user(make_app: Callable[..., Flask]) -> None:
    from coatcheck import current_session, current_user

    app = build_auth_app(make_app)

    @app.get("/who")
    def who() -> dict[str, object]:
        return {
            "handle": current_user.handle,
            "session": current_session().handle,
            "via": current_user.via,
        }

    Browser(app).register("alice")
    browser = remembered(app)
    restart(browser)
    body = browser.get("/who").json
    assert body is not None and body["handle"] is not None
    assert body["handle"] == body["session"] and body["via"] == "session"


def test_a_replay_within_the_grace_window_gets_the_same_session(
    app: Flask, clock: ManualClock
) -> None:
    # The review: a replayed cookie got a session of its own that outlived the
    # victim's logout. Now the replay gets the session the first use made.
    victim = remembered(app)
    copied = victim.cookie(REMEMBER)
    assert copied is not None
    restart(victim)
    assert victim.get("/api/me").status_code == 200
    clock.advance(5)
    thief = https_client(app)
    thief.set_cookie(REMEMBER, copied, domain="localhost")
    assert thief.get("/api/me").status_code == 200
    assert thief.get_cookie(SESSION, domain="localhost").value == victim.cookie(SESSION)  # type: ignore[union-attr]
    # The same series and secret (signed anew: the signature carries its time).
    signer = CoatCheck.state(app).remember_signer
    thief_remember = thief.get_cookie(REMEMBER, domain="localhost")
    assert thief_remember is not None
    same = signer.verify(thief_remember.value, max_age=3600)
    assert same is not None and same == signer.verify(victim.cookie(REMEMBER) or "", max_age=3600)
    victim.csrf()
    assert victim.post("/api/logout").status_code == 204
    assert thief.get("/api/me").status_code == 401
    thief.delete_cookie(SESSION, domain="localhost")
    assert thief.get("/api/me").status_code == 401  # its remember cookie died too


def test_logout_ends_every_session_the_series_made(app: Flask) -> None:
    browser = remembered(app)
    restart(browser)
    assert browser.get("/api/me").status_code == 200  # a session made by the series
    earlier = browser.cookie(SESSION)  # e.g. still held by a tab or a copied cookie jar
    restart(browser)
    assert browser.get("/api/me").status_code == 200  # and another one
    browser.csrf()
    assert browser.post("/api/logout").status_code == 204
    again = https_client(app)
    again.set_cookie(SESSION, earlier or "", domain="localhost")
    assert again.get("/api/me").status_code == 401


def test_an_invalid_remember_cookie_is_cleared(app: Flask) -> None:
    raw = https_client(app, use_cookies=False)
    response = raw.get("/api/me", headers={"Cookie": f"{REMEMBER}=garbage"})
    assert response.status_code == 401
    cleared = [c for c in set_cookies(response) if c.name == REMEMBER]
    assert cleared and cleared[0].attributes.get("max-age") == "0"
    assert response.headers["Cache-Control"] == "no-store"


def test_one_series_is_one_record_however_often_it_is_used(app: Flask) -> None:
    from coatcheck.core.records import RecordKind

    browser = remembered(app)
    store = CoatCheck.state(app).store
    for _ in range(20):
        restart(browser)
        assert browser.get("/api/me").status_code == 200
    assert store.count(RecordKind.REMEMBER) == 1


def test_a_series_from_before_the_rotation_protocol_still_logs_in(app: Flask) -> None:
    # Series stored by earlier versions keep their hash under "token": an upgrade
    # must not take every remembered device for a thief.
    import json as _json

    from coatcheck.core.ids import hash_token
    from coatcheck.core.records import RecordKind

    browser = remembered(app)
    state = CoatCheck.state(app)
    [series] = [r for r in state.store.list_by_user("1") if r.kind is RecordKind.REMEMBER]
    signed = browser.cookie(REMEMBER) or ""
    secret = (state.remember_signer.verify(signed, max_age=3600) or "").split(".")[1]
    series.data = {
        "token": _json.dumps(hash_token(secret)),
        "previous": '""',
        "rotated_at": _json.dumps(state.clock()),
    }
    state.store.save(series)  # as an earlier version wrote it
    restart(browser)
    assert browser.get("/api/me").status_code == 200
    events = [e.event for e in state.users.list_events(limit=5)]
    assert "remember_token_theft" not in events
    restart(browser)
    assert browser.get("/api/me").status_code == 200  # rotated into the new fields
