"""SPEC §8 in the pages: the second step of /login, /account/security, /reauth, admin reset.

Everything is done as a browser without JavaScript does it: forms with their
CSRF token, redirects followed by hand. Time is the test's clock: TOTP steps
and the step-up window move with it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock
from coatcheck.service.admin import audit_detail
from coatcheck.service.filters import event_label_filter
from coatcheck.users import models as events

from .test_pages import (
    BASE,
    PASSWORD,
    add_user,
    browser,
    forms,
    get,
    login,
    register,
    submit,
    text,
    token,
)
from .test_tokens import timed

STEP_UP_AGE = 601  # seconds: just past COATCHECK_REAUTH_MAX_AGE's 600
SELF = "script-src 'self'"
NONE = "script-src 'none'"


@pytest.fixture
def make_app(make_service: Callable[..., Flask], clock: ManualClock) -> Callable[..., Flask]:
    def factory(**config: object) -> Flask:
        return timed(make_service(**config), clock)

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def post(client: FlaskClient, path: str, data: dict[str, str], **kwargs: object) -> TestResponse:
    return client.post(path, data=data, base_url=BASE, **kwargs)  # type: ignore[arg-type]


def path_of(response: TestResponse) -> str:
    """Return where a redirect goes, as a path with its query."""
    assert response.status_code in (302, 303), (response.status_code, text(response)[:300])
    parts = urlsplit(response.location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def logged_in(app: Flask, name: str) -> FlaskClient:
    client = browser(app)
    assert path_of(login(client, name)) == "/account"
    return client


class Phone:
    """An authenticator app: the secret read off the enrolment page."""

    def __init__(self, page: str) -> None:
        uri = html.unescape(re.search(r'<code class="uri">([^<]+)</code>', page).group(1))  # type: ignore[union-attr]
        self.secret = parse_qs(urlsplit(uri).query)["secret"][0]
        grouped = re.search(r'<p class="secret"><code>([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
        assert grouped.replace(" ", "") == self.secret  # the key as shown, grouped for reading

    def code(self, clock: ManualClock) -> str:
        return pyotp.TOTP(self.secret).at(clock())


def recovery_codes(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", page)


def enrol(client: FlaskClient, clock: ManualClock, name: str = "Phone") -> tuple[Phone, list[str]]:
    """Add an authenticator app through the pages; return it and the recovery codes shown."""
    begun = submit(client, "/account/security", "/account/security/totp", {"name": name})
    assert path_of(begun) == "/account/security/totp"
    page = get(client, "/account/security/totp")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "<svg" in text(page) and "otpauth://totp/" in text(page)
    phone = Phone(text(page))
    confirmed = post(
        client,
        "/account/security/totp/confirm",
        {"csrf_token": token(text(page)), "code": phone.code(clock)},
    )
    assert path_of(confirmed).startswith("/account/security/recovery-codes")
    shown = get(client, path_of(confirmed))
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    codes = recovery_codes(text(shown))
    assert len(codes) == 10
    clock.advance(30)  # the confirming code's time step is spent
    return phone, codes


def enrolled(app: Flask, clock: ManualClock, name: str = "alice") -> tuple[Phone, list[str]]:
    """Give ``name`` (a new user) an authenticator app; return it and the recovery codes."""
    add_user(app, name)
    client = logged_in(app, name)
    return enrol(client, clock)


def second_step(client: FlaskClient, name: str, **fields: str) -> TestResponse:
    """Log in with the password; return the second step (GET /login) it leads to."""
    first = login(client, name, **fields)
    assert path_of(first).startswith("/login")
    return get(client, path_of(first))


# -- the second step of /login ---------------------------------------------------------


def test_login_with_an_authenticator_app_through_the_pages(app: Flask, clock: ManualClock) -> None:
    phone, _ = enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice", next="/account/sessions")
    assert page.status_code == 200
    assert "Code from your authenticator app" in text(page)
    assert 'autocomplete="one-time-code"' in text(page)
    assert "Use a recovery code" in text(page)
    assert 'name="next" value="/account/sessions"' in text(page)
    # The pending login reaches nothing else: the pages send it back to the second step.
    for path in ("/account", "/account/sessions", "/account/security", "/admin", "/reauth"):
        response = get(client, path)
        assert path_of(response).startswith("/login?next="), path
    done = post(
        client,
        "/login",
        {
            "csrf_token": token(text(page)),
            "method": "totp",
            "code": phone.code(clock),
            "next": "/account/sessions",
        },
    )
    assert path_of(done) == "/account/sessions"
    account = text(get(client, "/account"))
    assert "Two-step" in account and "Password and authenticator code" in account


def test_a_wrong_code_shows_the_form_again_with_a_sentence(app: Flask, clock: ManualClock) -> None:
    phone, _ = enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice")
    wrong = post(client, "/login", {"csrf_token": token(text(page)), "code": "000000"})
    assert wrong.status_code == 401
    assert "That code is wrong, used already or expired." in text(wrong)
    assert 'name="code"' in text(wrong)
    empty = post(client, "/login", {"csrf_token": token(text(wrong)), "code": " "})
    assert empty.status_code == 400 and "Enter the code." in text(empty)
    right = post(client, "/login", {"csrf_token": token(text(empty)), "code": phone.code(clock)})
    assert path_of(right) == "/account"
    failed = CoatCheck.state(app).users.list_events(limit=50)
    assert any(e.event == events.SECOND_FACTOR_FAILED for e in failed)


def test_wrong_codes_are_throttled_like_passwords(app: Flask, clock: ManualClock) -> None:
    enrolled(app, clock)
    client = browser(app)
    page = text(second_step(client, "alice"))
    statuses = []
    for _ in range(12):
        answer = post(client, "/login", {"csrf_token": token(page), "code": "000000"})
        statuses.append(answer.status_code)
        page = text(answer)
    assert statuses[0] == 401 and statuses[-1] == 429
    assert "Too many failed attempts" in page
    assert answer.headers["Retry-After"]


def test_login_with_a_recovery_code(app: Flask, clock: ManualClock) -> None:
    _, codes = enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice")
    switched = get(client, "/login?method=recovery")
    assert "Recovery code" in text(switched) and 'value="recovery"' in text(switched)
    done = post(
        client,
        "/login",
        {"csrf_token": token(text(page)), "method": "recovery", "code": codes[0].upper()},
    )
    assert path_of(done) == "/account"
    assert "9</strong> unused recovery codes" in text(get(client, "/account/security"))
    # Each code works once.
    again = browser(app)
    page = second_step(again, "alice")
    spent = post(
        again, "/login", {"csrf_token": token(text(page)), "method": "recovery", "code": codes[0]}
    )
    assert spent.status_code == 401


def test_the_second_step_can_be_abandoned_and_expires(app: Flask, clock: ManualClock) -> None:
    enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice")
    cancelled = post(client, "/login", {"csrf_token": token(text(page)), "cancel": "1"})
    assert path_of(cancelled) == "/login"
    first = text(get(client, "/login"))
    assert 'name="password"' in first and 'name="code"' not in first

    page = second_step(client, "alice")
    clock.advance(301)  # the pending login lives five minutes
    late = post(client, "/login", {"csrf_token": token(text(page)), "code": "123456"})
    assert path_of(late) == "/login"
    assert "took too long" in text(get(client, "/login"))


def test_a_user_without_a_factor_logs_in_in_one_step(app: Flask) -> None:
    add_user(app, "bob")
    client = browser(app)
    assert path_of(login(client, "bob")) == "/account"


# -- enrolment forced by the policy --------------------------------------------------------


def test_the_policy_sends_an_admin_to_enrol_and_enrolling_completes_the_login(
    make_app: Callable[..., Flask], clock: ManualClock
) -> None:
    app = make_app(COATCHECK_REQUIRE_SECOND_FACTOR="admin")
    add_user(app, "root", "admin")
    client = browser(app)
    first = login(client, "root")
    assert path_of(first) == "/account/security"
    page = text(get(client, "/account/security"))
    assert "Your account must have a second factor" in page
    assert "One more step to log in." in page
    assert path_of(get(client, "/admin")).startswith("/login?next=")
    assert path_of(get(client, "/login?next=/admin")) == "/account/security"

    # No step-up while enrolling: the password was just checked.
    clock.advance(STEP_UP_AGE)
    begun = submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    assert path_of(begun) == "/account/security/totp"
    totp = text(get(client, "/account/security/totp"))
    phone = Phone(totp)
    confirmed = post(
        client,
        "/account/security/totp/confirm",
        {"csrf_token": token(totp), "code": phone.code(clock)},
    )
    assert path_of(confirmed) == "/account/security/recovery-codes?next=/account"
    shown = text(get(client, path_of(confirmed)))
    assert len(recovery_codes(shown)) == 10
    assert "and you are logged in" in shown
    saved = post(
        client,
        "/account/security/recovery-codes/saved",
        {"csrf_token": token(shown), "next": "/account"},
    )
    assert path_of(saved) == "/account"
    assert get(client, "/admin").status_code == 200


# -- /account/security ---------------------------------------------------------------------


def test_recovery_codes_are_shown_once(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    _, codes = enrol(client, clock)
    again = get(client, "/account/security/recovery-codes")
    assert path_of(again) == "/account/security"  # never again
    page = text(get(client, "/account/security"))
    assert not set(codes) & set(recovery_codes(page))
    assert "10</strong> unused recovery codes" in page

    made = submit(client, "/account/security", "/account/security/recovery-codes/new", {})
    assert path_of(made) == "/account/security/recovery-codes"
    shown = text(get(client, "/account/security/recovery-codes"))
    fresh = recovery_codes(shown)
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert "I have saved them" in shown
    saved = post(client, "/account/security/recovery-codes/saved", {"csrf_token": token(shown)})
    assert path_of(saved) == "/account/security"
    assert path_of(get(client, "/account/security/recovery-codes")) == "/account/security"


def test_the_security_page_lists_renames_and_removes_factors(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    enrol(client, clock, "Phone")
    page = text(get(client, "/account/security"))
    assert "<strong>Phone</strong>" in page and "Authenticator app" in page and "last used" in page
    [factor_id] = re.findall(r'action="/account/security/(\d+)/rename"', page)

    renamed = submit(
        client, "/account/security", f"/account/security/{factor_id}/rename", {"name": "Old phone"}
    )
    assert path_of(renamed) == "/account/security"
    page = text(get(client, "/account/security"))
    assert "Renamed to “Old phone”." in page

    asked = submit(client, "/account/security", f"/account/security/{factor_id}/remove", {})
    assert asked.status_code == 200 and "your last second factor" in text(asked)
    assert CoatCheck.state(app).factors.factors(1)  # nothing removed before the confirmation
    removed = post(
        client,
        f"/account/security/{factor_id}/remove",
        {"csrf_token": token(text(asked)), "confirmed": "yes"},
    )
    assert path_of(removed) == "/account/security"
    page = text(get(client, "/account/security"))
    assert "“Old phone” is removed." in page and "None yet" in page
    kinds = [e.event for e in CoatCheck.state(app).users.list_events(limit=50)]
    assert events.FACTOR_RENAMED in kinds and events.FACTOR_REMOVED in kinds


def test_a_mistyped_first_code_shows_the_same_qr_again(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    page = text(get(client, "/account/security/totp"))
    phone = Phone(page)
    wrong = post(
        client, "/account/security/totp/confirm", {"csrf_token": token(page), "code": "000000"}
    )
    assert wrong.status_code == 401 and "That code is wrong" in text(wrong)
    assert Phone(text(wrong)).secret == phone.secret
    assert CoatCheck.state(app).factors.factors(1) == []  # counts only once confirmed
    right = post(
        client,
        "/account/security/totp/confirm",
        {"csrf_token": token(text(wrong)), "code": phone.code(clock)},
    )
    assert path_of(right).startswith("/account/security/recovery-codes")


def test_leaving_the_enrolment_page_forgets_its_secret(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    page = text(get(client, "/account/security/totp"))
    phone = Phone(page)
    store = CoatCheck.state(app).store
    [record] = [r for r in store.list_by_user("1") if r.kind.value == "session"]
    assert phone.secret not in repr(record.meta)  # the session names the factor; no secret
    get(client, "/account/security")  # Cancel
    assert path_of(get(client, "/account/security/totp")) == "/account/security"
    late = post(
        client,
        "/account/security/totp/confirm",
        {"csrf_token": token(page), "code": phone.code(clock)},
    )
    assert path_of(late) == "/account/security"
    assert CoatCheck.state(app).factors.factors(1) == []


# -- step-up -------------------------------------------------------------------------------


def test_a_stale_login_is_sent_to_reauth_and_back(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    clock.advance(STEP_UP_AGE)
    page = text(get(client, "/account/security"))
    assert "confirm it is you" in page
    assert 'data-webauthn="register"' not in page  # the script's form waits for a step-up
    refused = post(
        client,
        "/account/security/totp",
        {"csrf_token": token(page), "name": "Phone"},
        headers={"Referer": f"{BASE}/account/security"},
    )
    assert path_of(refused) == "/reauth?next=%2Faccount%2Fsecurity"
    assert CoatCheck.state(app).factors.factors(1) == []

    reauth = get(client, path_of(refused))
    assert reauth.status_code == 200 and 'name="password"' in text(reauth)
    assert reauth.headers["Content-Security-Policy"].count(NONE) == 1  # no key: no script
    wrong = post(
        client,
        "/reauth",
        {"csrf_token": token(text(reauth)), "password": "nope", "next": "/account/security"},
    )
    assert wrong.status_code == 401 and "Wrong password." in text(wrong)
    right = post(
        client,
        "/reauth",
        {"csrf_token": token(text(wrong)), "password": PASSWORD, "next": "/account/security"},
    )
    assert path_of(right) == "/account/security"
    begun = submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    assert path_of(begun) == "/account/security/totp"
    assert any(e.event == events.STEP_UP for e in CoatCheck.state(app).users.list_events())


def test_reauth_with_a_code_and_a_foreign_next_is_not_followed(
    app: Flask, clock: ManualClock
) -> None:
    phone, _ = enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice")
    post(client, "/login", {"csrf_token": token(text(page)), "code": phone.code(clock)})
    clock.advance(STEP_UP_AGE)
    reauth = text(get(client, "/reauth?next=/account/security"))
    assert "Code from your authenticator app" in reauth
    done = post(
        client,
        "/reauth",
        {
            "csrf_token": token(reauth),
            "method": "totp",
            "code": phone.code(clock),
            "next": "//x.example",
        },
    )
    assert path_of(done) == "/account"


def test_log_out_everywhere_else_needs_a_recent_check(app: Flask, clock: ManualClock) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    logged_in(app, "alice")  # another device
    clock.advance(STEP_UP_AGE)
    page = text(get(client, "/account/sessions"))
    refused = post(
        client,
        "/account/sessions/revoke-others",
        {"csrf_token": token(page)},
        headers={"Referer": f"{BASE}/account/sessions"},
    )
    assert path_of(refused) == "/reauth?next=%2Faccount%2Fsessions"
    assert text(get(client, "/account/sessions")).count("<tr>") == 3  # both still there


# -- admin ---------------------------------------------------------------------------------


def test_the_admin_sees_factors_and_resets_them(app: Flask, clock: ManualClock) -> None:
    add_user(app, "root", "admin")
    enrolled(app, clock, "alice")
    alice = CoatCheck.state(app).users.get_by_username("alice")
    assert alice is not None
    admin = logged_in(app, "root")
    page = text(get(admin, "/admin"))
    assert '<span class="tag">app</span>' in page and "Reset 2FA" in page
    action = f"/admin/users/{alice.id}/reset-2fa"
    asked = submit(admin, "/admin", action, {})
    assert asked.status_code == 200 and "Reset alice's second factors?" in html.unescape(
        text(asked)
    )
    assert CoatCheck.state(app).factors.factors(alice.id)
    done = post(admin, action, {"csrf_token": token(text(asked)), "confirmed": "yes"})
    assert path_of(done) == "/admin"
    assert "second factors are reset (1 factor removed)" in text(get(admin, "/admin"))
    assert CoatCheck.state(app).factors.factors(alice.id) == []
    reset = [e for e in CoatCheck.state(app).users.list_events() if e.event == events.FACTORS_RESET]
    assert reset and reset[0].user_id == alice.id
    # alice logs in with her password alone again.
    assert path_of(login(browser(app), "alice")) == "/account"


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("roles", {"roles": "staff"}),
        ("disable", {}),
        ("enable", {}),
        ("logout-everywhere", {}),
        ("reset-2fa", {}),
    ],
)
def test_every_admin_mutation_needs_a_recent_check(
    app: Flask, clock: ManualClock, action: str, fields: dict[str, str]
) -> None:
    add_user(app, "root", "admin")
    target = add_user(app, "alice")
    admin = logged_in(app, "root")
    clock.advance(STEP_UP_AGE)
    page = text(get(admin, "/admin"))
    refused = post(
        admin,
        f"/admin/users/{target}/{action}",
        {"csrf_token": token(page), **fields},
        headers={"Referer": f"{BASE}/admin"},
    )
    assert path_of(refused) == "/reauth?next=%2Fadmin"
    reauth = text(get(admin, path_of(refused)))
    back = post(
        admin, "/reauth", {"csrf_token": token(reauth), "password": PASSWORD, "next": "/admin"}
    )
    assert path_of(back) == "/admin"
    again = post(admin, f"/admin/users/{target}/{action}", {"csrf_token": token(reauth), **fields})
    assert again.status_code in (200, 303)  # the confirmation page, or done


# -- scripts: only where WebAuthn is -------------------------------------------------------


def test_only_the_pages_with_webauthn_controls_may_run_the_script(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "root", "admin")
    anonymous = browser(app)
    client = logged_in(app, "root")
    with_script = {"/login": anonymous, "/account/security": client}
    without = {
        "/": anonymous,
        "/register": anonymous,
        "/account": client,
        "/account/sessions": client,
        "/account/password": client,
        "/reauth": client,  # root has no security key
        "/admin": client,
        "/inspect": client,
    }
    for path, who in with_script.items():
        response = get(who, path)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        assert SELF in policy and "'unsafe-inline'" not in policy, path
        page = text(response)
        assert '<script src="/static/webauthn.js" defer></script>' in page
        assert '<meta name="csrf-token"' in page and "data-webauthn-error" in page
        assert page.count("<script") == 1
    for path, who in without.items():
        response = get(who, path)
        assert response.status_code == 200, path
        assert NONE in response.headers["Content-Security-Policy"], path
        assert "<script" not in text(response), path
    submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    totp = get(client, "/account/security/totp")
    assert NONE in totp.headers["Content-Security-Policy"] and "<script" not in text(totp)
    # A second step without a security key needs no script either.
    client = browser(app)
    add_user(app, "alice")
    enrol(logged_in(app, "alice"), clock)
    page = second_step(client, "alice")
    assert NONE in page.headers["Content-Security-Policy"] and "<script" not in text(page)


# -- audit log words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "words"),
    [
        ({"type": "totp", "name": "Phone"}, "Authenticator app; “Phone”."),
        ({"type": "webauthn", "name": "Key", "passkey": True}, "Passkey; “Key”."),
        ({"type": "webauthn", "name": "Key", "passkey": False}, "Security key; “Key”."),
        ({"type": "totp", "before": "A", "after": "B"}, "Authenticator app; was “A”; now “B”."),
        ({"count": 10}, "10 codes issued."),
        ({"left": 1}, "1 code left."),
        ({"method": "recovery"}, "With a recovery code."),
        ({"method": "pwd"}, "With a password."),
        ({"factors_removed": 2, "sessions_revoked": 3}, "2 factors removed; 3 sessions ended."),
        ({"factor_id": 4, "name": "Laptop"}, "“Laptop”."),
        ({"before": ["admin"], "after": []}, "Roles were admin; now none."),
    ],
)
def test_second_factor_events_read_as_words(detail: dict[str, object], words: str) -> None:
    assert audit_detail(detail) == words


def test_every_second_factor_event_has_a_label() -> None:
    names = [
        events.FACTOR_ADDED,
        events.FACTOR_REMOVED,
        events.FACTOR_RENAMED,
        events.FACTORS_RESET,
        events.RECOVERY_CODES_ISSUED,
        events.RECOVERY_CODE_USED,
        events.SECOND_FACTOR_FAILED,
        events.STEP_UP,
        events.PASSKEY_LOGIN,
        events.CREDENTIAL_CLONED,
    ]
    labels = [event_label_filter(name) for name in names]
    assert len(set(labels)) == len(names)
    assert all(
        label != name.replace("_", " ").capitalize()
        for label, name in zip(labels, names, strict=True)
    )


# -- old forms, remember-me, leaving enrolment -----------------------------------------------

STALE = "This form was open too long or in another tab; please try again."


def test_an_old_second_step_form_is_shown_again_and_its_token_works(
    app: Flask, clock: ManualClock
) -> None:
    phone, _ = enrolled(app, clock)
    client = browser(app)
    second_step(client, "alice")
    stale = post(client, "/login", {"csrf_token": "not-a-token", "code": phone.code(clock)})
    assert stale.status_code == 403 and STALE in text(stale)
    assert "Code from your authenticator app" in text(stale)
    done = post(client, "/login", {"csrf_token": token(text(stale)), "code": phone.code(clock)})
    assert path_of(done) == "/account"


@pytest.mark.parametrize(
    ("action", "shown"),
    [
        ("/reauth", 'action="/reauth"'),
        ("/account/security/totp", 'action="/account/security/totp"'),
        ("/account/security/recovery-codes/new", 'action="/account/security/totp"'),
    ],
)
def test_old_security_forms_are_shown_again(app: Flask, action: str, shown: str) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    stale = post(client, action, {"csrf_token": "not-a-token", "password": PASSWORD})
    assert stale.status_code == 403 and STALE in text(stale) and shown in text(stale)
    assert "Error 403" not in text(stale)


def test_remember_me_is_kept_until_the_second_step_is_done(app: Flask, clock: ManualClock) -> None:
    phone, _ = enrolled(app, clock)
    client = browser(app)
    page = second_step(client, "alice", remember="on")
    assert client.get_cookie("__Host-remember", domain="localhost") is None
    post(client, "/login", {"csrf_token": token(text(page)), "code": phone.code(clock)})
    assert client.get_cookie("__Host-remember", domain="localhost") is not None


def test_a_login_sent_to_enrol_can_log_out_instead(
    make_app: Callable[..., Flask], clock: ManualClock
) -> None:
    app = make_app(COATCHECK_REQUIRE_SECOND_FACTOR="all")
    add_user(app, "alice")
    client = browser(app)
    login(client, "alice")
    page = text(get(client, "/account/security"))
    assert "Cancel and log out" in page
    out = post(client, "/logout", {"csrf_token": token(page)})
    assert path_of(out) == "/login?logged_out=1"
    assert path_of(get(client, "/account/security")).startswith("/login")


def test_every_form_of_the_new_pages_posts_with_a_csrf_token(
    app: Flask, clock: ManualClock
) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    pages = [text(get(client, "/account/security")), text(get(client, "/reauth"))]
    submit(client, "/account/security", "/account/security/totp", {"name": "Phone"})
    totp = text(get(client, "/account/security/totp"))
    phone = Phone(totp)
    confirmed = post(
        client,
        "/account/security/totp/confirm",
        {"csrf_token": token(totp), "code": phone.code(clock)},
    )
    pages += [totp, text(get(client, path_of(confirmed))), text(get(client, "/account/security"))]
    clock.advance(30)
    other = browser(app)
    pages.append(text(second_step(other, "alice")))
    pages.append(text(get(other, "/login?method=recovery")))
    for page in pages:
        # The script's registration form (data-webauthn) has neither method nor action.
        found = [f for f in forms(page) if f["method"] or f["action"]]
        assert found
        for form in found:
            assert form["method"] == "post", form
            assert form["fields"].get("csrf_token"), form


def test_registering_under_the_policy_leads_to_enrolment(
    make_app: Callable[..., Flask], clock: ManualClock
) -> None:
    app = make_app(COATCHECK_REQUIRE_SECOND_FACTOR="all")
    client = browser(app)
    answer = register(client, "carol")
    assert path_of(answer) == "/account/security"
    assert "set up a second factor to finish logging in" in text(get(client, "/account/security"))
    assert path_of(get(client, "/account")).startswith("/login?next=")
