"""The portal's pages with ``rd`` (SPEC §10): log in, second step and step-up, then back.

A browser on https://auth.example.com, the SSO cookie for example.com; the
forward-auth answers are asked as a proxy would (see test_authz.py).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock

from .conftest import PASSWORD
from .test_authz import (
    CONFIG,
    RULES,
    SESSION,
    Portal,
    auth_request,
    forward_auth,
    sso_app,
)
from .test_pages import forms, text, token
from .test_tokens import timed

HTML = "text/html,application/xhtml+xml,*/*;q=0.8"
PORTAL_RULES: dict[str, Any] = {
    **RULES,
    "rules": [*RULES["rules"], {"domain": "tools.partner.net", "policy": "one_factor"}],
}
RD = "https://app.example.com/x?y=1"


@pytest.fixture
def app(make_service: Callable[..., Flask], clock: ManualClock) -> Iterator[Flask]:
    app = timed(make_service(**{**CONFIG, "COATCHECK_ACCESS_CONTROL": PORTAL_RULES}), clock)
    yield app
    CoatCheck.state(app).close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the long lists of rd values (each test logs in anew)."""
    app = sso_app(tmp_path_factory.mktemp("portal"), COATCHECK_ACCESS_CONTROL=PORTAL_RULES)
    add(app)
    yield app
    CoatCheck.state(app).close()


class Page(Portal):
    """A browser on the portal's pages: HTML, forms with their CSRF token."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.client.environ_base["HTTP_ACCEPT"] = HTML

    def page(self, path: str) -> TestResponse:
        return self.client.get(path)

    def submit(self, path: str, action: str, fields: dict[str, str]) -> TestResponse:
        """Load ``path`` and POST ``fields`` to ``action`` with the page's CSRF token."""
        loaded = self.page(path)
        assert loaded.status_code == 200, loaded.status_code
        return self.client.post(
            action,
            data={"csrf_token": token(text(loaded)), **fields},
            headers={"Origin": self.origin, "Sec-Fetch-Site": "same-origin"},
        )


def login_page(rd: str) -> str:
    return f"/login?rd={quote(rd, safe='')}"


def location(response: TestResponse) -> str:
    assert response.status_code == 303, (response.status_code, text(response)[:300])
    return response.headers["Location"]


def add(app: Flask, name: str = "alice", *roles: str) -> None:
    state = CoatCheck.state(app)
    if state.users.get_by_username(name) is not None:
        return
    state.users.create_user(name, state.hasher.hash(PASSWORD), roles=roles)


def test_the_login_page_says_who_asked_and_keeps_rd(app: Flask) -> None:
    page = Page(app).page(login_page(RD))
    assert page.status_code == 200
    html = text(page)
    assert "data-asked-by" in html and "<strong>app.example.com</strong> asked you" in html
    [form] = [f for f in forms(html) if f["action"] == "/login"]
    assert form["fields"]["next"] == RD


def test_login_goes_back_to_rd_exactly(app: Flask) -> None:
    add(app)
    browser = Page(app)
    answer = browser.submit(
        login_page(RD), "/login", {"username": "alice", "password": PASSWORD, "next": RD}
    )
    assert location(answer) == RD
    assert auth_request(app, RD, browser.session()).status_code == 200


def test_rd_from_the_query_of_the_post_counts_too(app: Flask) -> None:
    add(app)
    browser = Page(app)
    answer = browser.submit(
        login_page(RD), login_page(RD), {"username": "alice", "password": PASSWORD}
    )
    assert location(answer) == RD


@pytest.mark.parametrize(
    "rd",
    [
        "https://public.example.com/",
        "https://x.apps.example.com/a/b?c=d#e",
        "https://other.example.com/",  # under the cookie domain, named by no rule
        "https://tools.partner.net/x",  # named by a rule, outside the cookie domain
        "https://auth.example.com/account/security",  # the portal's own
        "https://app.example.com:8443/x",
        "/account/sessions",
    ],
)
def test_allowed_rd_is_followed(shared: Flask, rd: str) -> None:
    app = shared
    browser = Page(app)
    answer = browser.submit(
        login_page(rd), "/login", {"username": "alice", "password": PASSWORD, "next": rd}
    )
    assert location(answer) == rd


BAD_RD = [
    "//evil.example",
    "///evil.example",
    "https://evil.example",
    "https://evil.example/",
    "https://example.com.evil.net/",
    "https://app.example.com.evil.net/",
    "https://evilexample.com/",
    "https://tools.partner.net.evil.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "javascript://app.example.com/%0aalert(1)",
    "https://evil.example\\@app.example.com/",
    "https://app.example.com@evil.example/",
    "https://app.example.com:443@evil.example/",
    "https://user:pw@app.example.com/",
    "https://evil.example#@app.example.com/",
    "https://evil.example?@app.example.com/",
    "http://app.example.com/x",  # the cookies are secure
    "https%3A%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%255C%255Cevil.example",
    "https://evil.example%2F@app.example.com/",
    "https://app.example.com%2F.evil.example/",
    "https://app.example.com%40evil.example/",
    "\uff0f\uff0fevil.example",
    "/\uff0fevil.example",
    "https:\uff0f\uff0fevil.example",
    "https://app.example.com\uff0f.evil.example/",
    "https://app.example.com\u3002evil.example/",
    "https://app\u3002example\u3002com/",
    "https:/\\evil.example",
    "https:\\\\evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "data:text/html,<script>alert(1)</script>",
    "https://app.example.com/x\nLocation: https://evil.example",
    "https://app.example.com/x\r\n",
    "https://app.example.com/\tx",
    "https://app.exa\tmple.com/",
    "/\t/evil.example",
    "https://app.example.com/../../evil",
    "https://app.example.com/%2e%2e/x",
    "ftp://app.example.com/",
    "https://app.example.com:99999/",
    "https://",
    "https:",
]


@pytest.mark.parametrize("rd", BAD_RD)
def test_rd_to_a_host_not_allowed_falls_back_to_the_account(shared: Flask, rd: str) -> None:
    app = shared
    browser = Page(app)
    shown = text(browser.page(login_page(rd)))
    assert "data-asked-by" not in shown
    assert 'name="next"' not in shown
    answer = browser.submit(
        login_page(rd), "/login", {"username": "alice", "password": PASSWORD, "next": rd}
    )
    assert urlsplit(location(answer)).path == "/account"
    assert urlsplit(location(answer)).netloc in ("", "auth.example.com")


def test_a_logged_in_user_at_login_goes_straight_to_rd(app: Flask) -> None:
    add(app)
    browser = Page(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    assert location(browser.page(login_page(RD))) == RD
    assert urlsplit(location(browser.page(login_page("https://evil.example/")))).path == (
        "/account"
    )


def test_a_remembered_user_at_login_goes_straight_to_rd(app: Flask) -> None:
    add(app)
    portal = Portal(app)
    portal.csrf()
    login = portal.post("/api/login", {"username": "alice", "password": PASSWORD, "remember": True})
    assert login.status_code == 200
    remember = portal.client.get_cookie("__Host-remember", domain="auth.example.com")
    assert remember is not None
    returning = Page(app)
    returning.client.set_cookie("__Host-remember", remember.value, domain="auth.example.com")
    # The proxy sees no session: forward auth sends to the portal, which logs in by the
    # remember-me cookie and goes straight back.
    assert forward_auth(app, RD).status_code == 302
    assert location(returning.page(login_page(RD))) == RD
    assert auth_request(app, RD, returning.session()).status_code == 200


def enrolled_user(app: Flask, clock: ManualClock, name: str = "alice") -> Page:
    """Return a page browser logged in (aal 1) whose user has just set up TOTP."""
    browser = Page(app)
    add(app, name)
    assert browser.login(name, PASSWORD).status_code == 200
    browser.enrol(clock)
    clock.advance(30)  # the confirming code's step is spent
    return browser


def test_the_second_factor_step_keeps_rd(app: Flask, clock: ManualClock) -> None:
    secret = enrolled_user(app, clock).secret
    browser = Page(app)
    browser.secret = secret
    first = browser.submit(
        login_page(RD), "/login", {"username": "alice", "password": PASSWORD, "next": RD}
    )
    step = location(first)
    assert urlsplit(step).path == "/login"
    code_page = browser.page(step)
    html = text(code_page)
    assert "data-asked-by" in html and "app.example.com" in html
    [form] = [f for f in forms(html) if "code" in f["fields"]]
    assert form["fields"]["next"] == RD
    answer = browser.client.post(
        "/login",
        data={"csrf_token": token(html), "next": RD, "method": "totp", "code": browser.code(clock)},
        headers={"Origin": browser.origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert location(answer) == RD
    allowed = forward_auth(app, "https://secure.example.com/", browser.session())
    assert allowed.status_code == 200  # a login with a second factor: aal 2


def test_the_second_step_with_a_bad_rd_falls_back(app: Flask, clock: ManualClock) -> None:
    secret = enrolled_user(app, clock).secret
    browser = Page(app)
    browser.secret = secret
    evil = "https://evil.example/"
    step = location(
        browser.submit(
            login_page(evil), "/login", {"username": "alice", "password": PASSWORD, "next": evil}
        )
    )
    html = text(browser.page(step))
    assert "evil.example" not in html
    answer = browser.client.post(
        "/login",
        data={
            "csrf_token": token(html),
            "next": evil,
            "method": "totp",
            "code": browser.code(clock),
        },
        headers={"Origin": browser.origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert urlsplit(location(answer)).path == "/account"


def reauth_page(rd: str) -> str:
    return f"/reauth?rd={quote(rd, safe='')}"


def test_step_up_for_a_two_factor_site_asks_for_the_factor_only(
    app: Flask, clock: ManualClock
) -> None:
    browser = enrolled_user(app, clock)
    rd = "https://secure.example.com/doc?id=7"
    sent = forward_auth(app, rd, browser.session())
    assert sent.status_code == 302 and urlsplit(sent.headers["Location"]).path == "/reauth"
    page = browser.page(reauth_page(rd))
    assert page.status_code == 200
    html = text(page)
    assert "data-asked-by" in html and "secure.example.com" in html
    assert 'name="password"' not in html
    [form] = [f for f in forms(html) if "code" in f["fields"]]
    assert form["fields"]["next"] == rd
    answer = browser.client.post(
        "/reauth",
        data={"csrf_token": token(html), "next": rd, "method": "totp", "code": browser.code(clock)},
        headers={"Origin": browser.origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert location(answer) == rd
    assert forward_auth(app, rd, browser.session()).status_code == 200


def test_step_up_without_a_factor_links_to_setting_one_up(app: Flask) -> None:
    browser = Page(app)
    add(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    html = text(browser.page(reauth_page("https://secure.example.com/")))
    assert 'name="password"' not in html and 'name="code"' not in html
    assert 'href="/account/security"' in html and "Set one up" in html
    assert "secure.example.com" in html


def test_reauth_without_rd_still_asks_for_the_password(app: Flask) -> None:
    browser = Page(app)
    add(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    html = text(browser.page(reauth_page("https://evil.example/")))
    assert 'name="password"' in html and "evil.example" not in html


def test_the_session_cookie_reaches_the_protected_site(app: Flask) -> None:
    """The cookie set on auth.example.com is the one a proxy for app.example.com passes on."""
    add(app)
    browser = Page(app)
    browser.submit(login_page(RD), "/login", {"username": "alice", "password": PASSWORD})
    cookie = browser.client.get_cookie(SESSION, domain="example.com")
    assert cookie is not None and cookie.domain in ("example.com", ".example.com")
    assert auth_request(app, RD, cookie.value).headers["Remote-User"] == "alice"


def test_an_rd_with_markup_is_escaped_on_the_page(shared: Flask) -> None:
    rd = 'https://app.example.com/x?a="><script>alert(1)</script>'
    html = text(Page(shared).page(login_page(rd)))
    assert "<script>alert(1)" not in html
    [form] = [f for f in forms(html) if f["action"] == "/login"]
    assert form["fields"]["next"] == rd  # kept, as text


def test_a_login_sent_to_enrol_still_goes_back_to_rd(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    import pyotp

    config = {**CONFIG, "COATCHECK_ACCESS_CONTROL": PORTAL_RULES}
    app = timed(make_service(**config, COATCHECK_REQUIRE_SECOND_FACTOR="all"), clock)
    add(app)
    page = Page(app)
    form = {"username": "alice", "password": PASSWORD, "next": RD}
    assert location(page.submit(login_page(RD), "/login", form)) == "/account/security"
    enrolment = page.page("/account/security")
    # After a passkey instead, the recovery codes page goes on to rd as well.
    assert "recovery-codes?next=https://app.example.com/x" in text(enrolment)
    begun = page.submit("/account/security", "/account/security/totp", {"name": "Phone"})
    assert location(begun) == "/account/security/totp"
    shown = text(page.page("/account/security/totp"))
    secret = urlsplit(shown.split("otpauth://", 1)[1].split('"', 1)[0]).query
    code = pyotp.TOTP(secret.split("secret=", 1)[1].split("&", 1)[0]).at(clock())
    confirmed = page.submit(
        "/account/security/totp", "/account/security/totp/confirm", {"code": code}
    )
    codes_page = location(confirmed)
    assert codes_page.startswith("/account/security/recovery-codes?next=")
    codes = page.page(codes_page)
    assert "form-action 'self' https://app.example.com" in codes.headers["Content-Security-Policy"]
    kept = re.search(r'name="next" value="([^"]+)"', text(codes))
    assert kept is not None
    saved = page.client.post(
        "/account/security/recovery-codes/saved",
        data={"csrf_token": token(text(codes)), "next": html.unescape(kept.group(1))},
        headers={"Origin": page.origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert location(saved) == RD
