"""SPEC §9 over the JSON API with the development mailbox: reset, verification, notices.

No SMTP server here (tests/service/test_mail_delivery.py has one): mails are
kept in the outbox, and the sender (the one ``coatcheck serve`` runs) writes
out queued requests when the test runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock
from coatcheck.service.mailer import build_sender
from coatcheck.users.outbox import OutboxMail

from ..ext.auth_app import Browser
from .conftest import PASSWORD
from .test_second_factor import TotpBrowser
from .test_tokens import api, timed

PUBLIC = "https://auth.example.com"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def app(make_service: Callable[..., Flask], clock: ManualClock) -> Flask:
    return timed_users(make_service(COATCHECK_PUBLIC_URL=PUBLIC), clock)


def timed_users(app: Flask, clock: ManualClock) -> Flask:
    """Every part of ``app`` on the test's clock, the user database's times included."""
    CoatCheck.state(app).users.clock = clock
    return timed(app, clock)


def add(app: Flask, name: str = "alice", email: str | None = "alice@example.com") -> int:
    state = CoatCheck.state(app)
    return state.users.create_user(name, state.hasher.hash(PASSWORD), email=email).id


def deliver(app: Flask) -> list[OutboxMail]:
    """Run the sender once; return every mail kept so far, oldest first."""
    with app.app_context():
        build_sender(app).send_all()
    return list(reversed(CoatCheck.state(app).users.outbox.page(limit=200)))


def sent(app: Flask, kind: str) -> list[OutboxMail]:
    return [m for m in deliver(app) if m.kind == kind and m.status == "sent"]


def link(mail: OutboxMail, path: str) -> str:
    assert mail.text_body is not None
    found = re.search(re.escape(f"{PUBLIC}{path}/") + r"([A-Za-z0-9_-]+)", mail.text_body)
    assert found is not None, mail.text_body
    return found.group(1)


def forgot(app: Flask, login: str, **headers: str) -> Any:
    browser = Browser(app)
    browser.csrf()
    return browser.post("/api/password/forgot", {"login": login}, **headers)


def test_forgot_answers_the_same_for_every_login(app: Flask) -> None:
    add(app)
    add(app, "bob", None)  # no address
    answers = [forgot(app, login) for login in ("alice", "nobody", "bob", "alice@example.com")]
    assert {a.status_code for a in answers} == {202}
    assert len({a.get_data() for a in answers}) == 1
    mails = sent(app, "password_reset")
    assert [m.to_addr for m in mails] == ["alice@example.com", "alice@example.com"]
    dropped = [m for m in deliver(app) if m.status == "dropped"]
    assert len(dropped) == 2  # nobody, and bob without an address: nothing sent


def test_a_reset_link_sets_the_password_once_and_ends_every_session(
    app: Flask, clock: ManualClock
) -> None:
    add(app)
    old = Browser(app)
    old.login("alice", PASSWORD)
    forgot(app, "alice")
    [mail] = sent(app, "password_reset")
    token = link(mail, "/reset")
    assert mail.subject == "Reset your password"
    client = api(app)
    weak = client.post("/api/password/reset", json={"token": token, "new_password": "short"})
    assert (weak.status_code, weak.json["error"]) == (400, "weak_password")  # type: ignore[index]
    done = client.post("/api/password/reset", json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204
    assert old.get("/api/me").status_code == 401  # every session ended
    again = client.post("/api/password/reset", json={"token": token, "new_password": NEW_PASSWORD})
    assert (again.status_code, again.json["error"]) == (400, "invalid_token")  # type: ignore[index]
    assert Browser(app).login("alice", NEW_PASSWORD).status_code == 200
    [notice] = sent(app, "notice")
    assert "reset" in (notice.text_body or "") and notice.to_addr == "alice@example.com"


def test_reset_links_expire_and_die_with_any_password_change(
    app: Flask, clock: ManualClock
) -> None:
    add(app)
    forgot(app, "alice")
    forgot(app, "alice")
    first, second = (link(m, "/reset") for m in sent(app, "password_reset"))
    clock.advance(1801)
    client = api(app)
    late = client.post("/api/password/reset", json={"token": first, "new_password": NEW_PASSWORD})
    assert late.status_code == 400
    forgot(app, "alice")
    fresh = link(sent(app, "password_reset")[-1], "/reset")
    owner = Browser(app)
    owner.login("alice", PASSWORD)
    changed = owner.post(
        "/api/password", {"current_password": PASSWORD, "new_password": "changed by hand ok"}
    )
    assert changed.status_code == 204
    dead = client.post("/api/password/reset", json={"token": fresh, "new_password": NEW_PASSWORD})
    assert dead.status_code == 400
    assert second  # (expired with the first)


def test_at_most_three_reset_mails_an_hour_per_account(app: Flask, clock: ManualClock) -> None:
    add(app)
    for _ in range(5):
        assert forgot(app, "alice").status_code == 202
    assert len(sent(app, "password_reset")) == 3
    clock.advance(3601)
    forgot(app, "alice")
    assert len(sent(app, "password_reset")) == 4


def test_forgot_is_throttled_per_address(app: Flask) -> None:
    answers = [forgot(app, f"user{i}").status_code for i in range(21)]
    assert answers[:20] == [202] * 20 and answers[20] == 429


def test_the_reset_link_ignores_a_poisoned_host(app: Flask) -> None:
    add(app)
    answer = api(app).post(
        "/api/password/forgot", json={"login": "alice"}, headers={"Host": "evil.example"}
    )
    assert answer.status_code == 202
    [mail] = sent(app, "password_reset")
    assert "evil.example" not in (mail.text_body or "") + (mail.html_body or "")
    assert link(mail, "/reset")


def test_a_reset_keeps_the_second_factor(app: Flask, clock: ManualClock) -> None:
    add(app)
    owner = TotpBrowser(app)
    owner.login("alice", PASSWORD)
    owner.enrol(clock)
    forgot(app, "alice")
    token = link(sent(app, "password_reset")[-1], "/reset")
    assert (
        api(app)
        .post("/api/password/reset", json={"token": token, "new_password": NEW_PASSWORD})
        .status_code
        == 204
    )
    answer = TotpBrowser(app).login("alice", NEW_PASSWORD)
    assert answer.json["second_factor_required"] is True  # type: ignore[index]


def test_verification_and_address_change(app: Flask, clock: ManualClock) -> None:
    browser = Browser(app)
    browser.csrf()
    created = browser.post(
        "/api/register",
        {"username": "carol", "password": PASSWORD, "email": "carol@example.com"},
    )
    assert created.status_code == 201
    browser.csrf()
    me = browser.get("/api/me").json["user"]  # type: ignore[index]
    assert (me["email"], me["email_verified"]) == ("carol@example.com", False)
    [mail] = sent(app, "verify_email")
    token = link(mail, "/verify-email")
    confirm = api(app).post("/api/email/verify/confirm", json={"token": token})
    assert confirm.status_code == 204
    assert browser.get("/api/me").json["user"]["email_verified"] is True  # type: ignore[index]
    assert api(app).post("/api/email/verify/confirm", json={"token": token}).status_code == 400

    change = browser.post("/api/email", {"email": "carol@new.example"})
    assert change.status_code == 202
    assert browser.get("/api/me").json["user"]["email"] == "carol@example.com"  # not yet
    new = [m for m in sent(app, "verify_email") if m.to_addr == "carol@new.example"]
    assert len(new) == 1
    api(app).post("/api/email/verify/confirm", json={"token": link(new[0], "/verify-email")})
    user = browser.get("/api/me").json["user"]  # type: ignore[index]
    assert (user["email"], user["email_verified"]) == ("carol@new.example", True)
    [told] = [m for m in sent(app, "notice") if m.to_addr == "carol@example.com"]
    assert "changed" in (told.text_body or "")


def test_security_notices_reach_the_user(app: Flask, clock: ManualClock) -> None:
    add(app)
    owner = Browser(app)
    owner.login("alice", PASSWORD, headers={})
    owner.post("/api/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    notices = sent(app, "notice")
    assert [m.to_addr for m in notices] == ["alice@example.com"]
    assert "password was changed" in (notices[0].text_body or "")


def test_a_new_device_is_told_and_can_be_turned_off(app: Flask) -> None:
    add(app)
    firefox = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Firefox/128.0"}
    chrome = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Chrome/126.0 Safari/537"}
    first = Browser(app)
    first.client.environ_base.update({"HTTP_USER_AGENT": firefox["User-Agent"]})
    first.login("alice", PASSWORD)
    again = Browser(app)
    again.client.environ_base.update({"HTTP_USER_AGENT": firefox["User-Agent"]})
    again.login("alice", PASSWORD)
    assert sent(app, "notice") == []  # the first device, then the same one
    other = Browser(app)
    other.client.environ_base.update({"HTTP_USER_AGENT": chrome["User-Agent"]})
    other.login("alice", PASSWORD)
    [notice] = sent(app, "notice")
    assert "Chrome" in (notice.text_body or "")
    off = other.post("/api/account/notices", {"new_device": False})
    assert off.json == {"new_device": False}
    safari = Browser(app)
    safari.client.environ_base.update({"HTTP_USER_AGENT": "curl/8.0"})
    safari.login("alice", PASSWORD)
    assert len(sent(app, "notice")) == 1


def test_unverified_users_reach_only_verification_when_required(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    app = timed_users(
        make_service(COATCHECK_PUBLIC_URL=PUBLIC, COATCHECK_REQUIRE_VERIFIED_EMAIL=True), clock
    )
    add(app)
    browser = Browser(app)
    browser.login("alice", PASSWORD)
    refused = browser.get("/api/sessions")
    assert (refused.status_code, refused.json["error"]) == (403, "email_verification_required")  # type: ignore[index]
    assert browser.get("/api/me").status_code == 200
    assert browser.post("/api/email/verify").status_code == 202
    [mail] = sent(app, "verify_email")
    other = api(app)  # the link opened in another browser
    assert (
        other.post(
            "/api/email/verify/confirm", json={"token": link(mail, "/verify-email")}
        ).status_code
        == 204
    )
    assert browser.get("/api/sessions").status_code == 200


def test_mail_bodies_are_escaped(app: Flask) -> None:
    add(app, "eve", "eve@example.com")
    with app.app_context():
        from coatcheck.ext.mail import render_mail

        written = render_mail(
            "notice",
            {
                "user": type("U", (), {"username": "<b>eve</b>"})(),
                "event": "x",
                "detail": {},
                "link": PUBLIC,
            },
        )
    assert "<b>eve</b>" not in written.html and "&lt;b&gt;eve&lt;/b&gt;" in written.html


def test_bad_input_is_a_clear_4xx(app: Flask) -> None:
    browser = Browser(app)
    browser.csrf()
    for body in ({}, {"login": ""}, {"login": 5}, {"login": "x" * 257}):
        assert browser.post("/api/password/forgot", body).status_code == 400
    client = api(app)
    for body in ({}, {"token": "x"}, {"token": "x" * 500, "new_password": NEW_PASSWORD}):
        assert client.post("/api/password/reset", json=body).status_code == 400
    assert client.post("/api/email/verify/confirm", json={"token": "nope"}).status_code == 400
    assert pyotp  # (imported for the second-factor flow above)


def test_forgot_takes_the_same_time_for_known_and_unknown_logins(app: Flask) -> None:
    """Both are one insert into the outbox; the lookup happens later, in the sender.

    Compared as a ratio of medians, alternating, never as a time.
    """
    import statistics
    import time

    add(app)
    client = api(app)
    timings: dict[str, list[float]] = {"alice": [], "nobody-at-all": []}
    for _ in range(10):  # 20 requests: all under the address's limit
        for login in timings:
            started = time.perf_counter()
            answer = client.post("/api/password/forgot", json={"login": login})
            timings[login].append(time.perf_counter() - started)
            assert answer.status_code == 202
    known, unknown = (statistics.median(t) for t in timings.values())
    assert 0.5 < known / unknown < 2.0, (known, unknown)


def test_a_link_for_one_purpose_does_not_serve_another(app: Flask) -> None:
    browser = Browser(app)
    browser.csrf()
    browser.post(
        "/api/register", {"username": "dave", "password": PASSWORD, "email": "dave@example.com"}
    )
    [mail] = sent(app, "verify_email")
    verify_token = link(mail, "/verify-email")
    used_for_reset = api(app).post(
        "/api/password/reset", json={"token": verify_token, "new_password": NEW_PASSWORD}
    )
    assert (used_for_reset.status_code, used_for_reset.json["error"]) == (400, "invalid_token")  # type: ignore[index]
    forgot(app, "dave")
    reset_token = link(sent(app, "password_reset")[-1], "/reset")
    confirm = api(app).post("/api/email/verify/confirm", json={"token": reset_token})
    assert confirm.status_code == 400
