"""The pages of SPEC §9: /forgot, /reset/<token>, /verify-email/<token>, the e-mail section
of /account; the mails come from the development mailbox through the sender."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock

from .test_account_mail import PUBLIC, link, sent, timed_users
from .test_pages import NEW_PASSWORD, PASSWORD, browser, forms, get, login, submit, text
from .test_pages_second_factor import STEP_UP_AGE, enrol, path_of, post

STALE = "This form was open too long or in another tab; please try again."
INVALID = "This link is unknown, used already or expired"
RESET_DONE = "Your password is changed and every device was logged out. Log in with the new one."


@pytest.fixture
def app(make_service: Callable[..., Flask], clock: ManualClock) -> Flask:
    return timed_users(make_service(COATCHECK_PUBLIC_URL=PUBLIC), clock)


def add(app: Flask, name: str = "alice", email: str | None = "alice@example.com") -> int:
    state = CoatCheck.state(app)
    return state.users.create_user(name, state.hasher.hash(PASSWORD), email=email).id


def logged_in(app: Flask, name: str = "alice") -> FlaskClient:
    client = browser(app)
    assert path_of(login(client, name)) == "/account"
    return client


def forgot(client: FlaskClient, login_name: str) -> TestResponse:
    return submit(client, "/forgot", "/forgot", {"login": login_name})


def reset_link(app: Flask, name: str = "alice") -> str:
    """Ask for a reset through /forgot; return the token of the link mailed."""
    assert path_of(forgot(browser(app), name)) == "/forgot?sent=1"
    return link(sent(app, "password_reset")[-1], "/reset")


def set_password(
    client: FlaskClient, token: str, new: str, confirm: str | None = None
) -> TestResponse:
    """POST a new password to a reset link (the CSRF token from /forgot: the link may be dead)."""
    fields = {"new_password": new, "new_password_confirm": confirm or new}
    return submit(client, "/forgot", f"/reset/{token}", fields)


def assert_secret_url_headers(response: TestResponse) -> None:
    # The origin at most: never the path with the secret (no-referrer would make browsers
    # send Origin: null with the page's form, which the CSRF check refuses).
    assert response.headers["Referrer-Policy"] == "strict-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]


def flashes(response: TestResponse) -> str:
    return html.unescape(
        " ".join(re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', text(response), re.S))
    )


def account_forms(page: str) -> dict[str, dict[str, object]]:
    return {str(form["action"]): form for form in forms(page)}


# -- /forgot and /reset -------------------------------------------------------------------


def test_login_links_to_forgot_and_forgot_has_one_field(app: Flask) -> None:
    page = text(get(browser(app), "/login"))
    assert 'href="/forgot">Forgot your password?</a>' in page
    shown = get(browser(app), "/forgot")
    assert shown.status_code == 200
    [form] = forms(text(shown))
    assert form["action"] == "/forgot" and form["method"] == "post"
    assert set(form["fields"]) == {"csrf_token", "login"}
    assert "Username or e-mail address" in text(shown)


def test_forgot_answers_the_same_for_every_login(app: Flask) -> None:
    add(app)
    add(app, "bob", None)
    answers = []
    for name in ("alice", "nobody", "bob", "alice@example.com"):
        client = browser(app)
        done = forgot(client, name)
        assert path_of(done) == "/forgot?sent=1"
        answers.append(text(get(client, "/forgot?sent=1")))
    assert len(set(answers)) == 1
    assert "a link to choose a new password is on its way" in answers[0]
    assert "30 minutes" in answers[0]
    assert [m.to_addr for m in sent(app, "password_reset")] == ["alice@example.com"] * 2


def test_forgot_refuses_an_empty_field_and_is_throttled(app: Flask) -> None:
    client = browser(app)
    empty = forgot(client, " ")
    assert empty.status_code == 400 and "Enter your username" in text(empty)
    for _ in range(20):
        assert forgot(client, "alice").status_code == 303
    refused = forgot(client, "alice")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in flashes(refused)
    assert 'value="alice"' in text(refused)  # the form again, as typed


def test_a_reset_link_sets_the_password_and_the_login_works_with_it_only(
    app: Flask, clock: ManualClock
) -> None:
    add(app)
    old = logged_in(app)
    token = reset_link(app)
    client = browser(app)
    page = get(client, f"/reset/{token}")
    assert page.status_code == 200
    assert_secret_url_headers(page)
    [form] = forms(text(page))
    assert form["action"] == f"/reset/{token}"
    assert {"csrf_token", "new_password", "new_password_confirm"} <= set(form["fields"])
    assert "At least 12 characters" in text(page)
    assert 'autocomplete="username" hidden' in text(page)  # for the password manager
    get(client, f"/reset/{token}")  # looking at it twice spends nothing

    mismatch = set_password(client, token, NEW_PASSWORD, "something else entirely")
    assert mismatch.status_code == 400 and "do not match" in flashes(mismatch)
    weak = set_password(client, token, "short")
    assert weak.status_code == 400 and 'name="new_password"' in text(weak)
    done = set_password(client, token, NEW_PASSWORD)
    assert path_of(done) == "/login?password_reset=1"
    assert_secret_url_headers(done)
    assert RESET_DONE in text(get(client, "/login?password_reset=1"))

    assert path_of(get(old, "/account")).startswith("/login")  # every device logged out
    assert login(browser(app), "alice", PASSWORD).status_code == 401
    assert path_of(login(browser(app), "alice", NEW_PASSWORD)) == "/account"

    used = get(browser(app), f"/reset/{token}")
    assert used.status_code == 400 and INVALID in text(used)
    assert 'href="/forgot"' in text(used)
    assert_secret_url_headers(used)
    again = set_password(browser(app), token, "yet another good password")
    assert again.status_code == 400 and INVALID in text(again)
    assert path_of(login(browser(app), "alice", NEW_PASSWORD)) == "/account"


@pytest.mark.parametrize("token", ["not-a-token", "x" * 43, "a" * 500])
def test_unknown_reset_links_are_a_page_pointing_to_forgot(app: Flask, token: str) -> None:
    page = get(browser(app), f"/reset/{token}")
    assert page.status_code == 400 and INVALID in text(page)
    assert 'href="/forgot"' in text(page) and not forms(text(page))[1:]  # only the nav's


def test_an_expired_or_outdated_link_is_refused(app: Flask, clock: ManualClock) -> None:
    add(app)
    token = reset_link(app)
    clock.advance(1801)
    assert get(browser(app), f"/reset/{token}").status_code == 400
    fresh = reset_link(app)
    owner = logged_in(app)
    changed = submit(
        owner,
        "/account/password",
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "changed by hand here",
            "new_password_confirm": "changed by hand here",
        },
    )
    assert changed.status_code == 303
    dead = set_password(browser(app), fresh, NEW_PASSWORD)
    assert dead.status_code == 400 and INVALID in text(dead)


def test_after_a_reset_the_login_still_asks_for_the_second_factor(
    app: Flask, clock: ManualClock
) -> None:
    add(app)
    enrol(logged_in(app), clock)
    token = reset_link(app)
    assert path_of(set_password(browser(app), token, NEW_PASSWORD)) == "/login?password_reset=1"
    client = browser(app)
    first = login(client, "alice", NEW_PASSWORD)
    assert path_of(first) == "/login"  # the second step, not the account
    assert "Code from your authenticator app" in text(get(client, "/login"))


def test_a_stale_reset_form_is_shown_again_and_changes_nothing(app: Flask) -> None:
    add(app)
    token = reset_link(app)
    client = browser(app)
    get(client, f"/reset/{token}")
    data = {
        "csrf_token": "stale",
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    again = post(client, f"/reset/{token}", data)
    assert again.status_code == 403 and STALE in text(again)
    assert f'action="/reset/{token}"' in text(again)
    assert_secret_url_headers(again)
    assert get(browser(app), f"/reset/{token}").status_code == 200  # not spent
    stale = post(browser(app), "/forgot", {"csrf_token": "stale", "login": "alice"})
    assert stale.status_code == 403 and STALE in text(stale) and 'value="alice"' in text(stale)


# -- /verify-email ------------------------------------------------------------------------


def verify_link(app: Flask) -> str:
    return link(sent(app, "verify_email")[-1], "/verify-email")


def test_verify_email_get_changes_nothing_and_the_button_confirms(app: Flask) -> None:
    user_id = add(app)
    client = logged_in(app)
    resend = submit(client, "/account", "/account/email/verify", {})
    assert path_of(resend) == "/account"
    assert "A link to confirm alice@example.com is on its way" in flashes(get(client, "/account"))
    token = verify_link(app)
    scanner = browser(app)
    for _ in range(3):  # a mail scanner prefetches the link
        page = get(scanner, f"/verify-email/{token}")
        assert page.status_code == 200
        assert_secret_url_headers(page)
    assert CoatCheck.state(app).users.get(user_id).email_verified is False  # type: ignore[union-attr]
    [form] = [f for f in forms(text(page)) if f["action"] == f"/verify-email/{token}"]
    assert form["method"] == "post" and "csrf_token" in form["fields"]
    assert "Confirm my address" in text(page)

    other = browser(app)  # opened in another browser, not logged in
    path = f"/verify-email/{token}"
    done = submit(other, path, path, {})
    assert done.status_code == 200
    assert_secret_url_headers(done)
    assert "Your address <strong>alice@example.com</strong> is confirmed" in text(done)
    assert CoatCheck.state(app).users.get(user_id).email_verified is True  # type: ignore[union-attr]
    used = submit(other, path, path, {})
    assert used.status_code == 400 and INVALID in text(used)
    account = text(get(client, "/account"))
    assert "Confirmed" in account and "/account/email/verify" not in account


def test_an_unknown_verification_link_is_a_400_page(app: Flask) -> None:
    path = "/verify-email/nope"
    assert get(browser(app), path).status_code == 200  # GET checks nothing
    refused = submit(browser(app), path, path, {})
    assert refused.status_code == 400 and INVALID in text(refused)


# -- the e-mail section of /account -------------------------------------------------------


def test_the_account_page_shows_the_address_and_its_forms(app: Flask) -> None:
    add(app)
    add(app, "bob", None)
    page = text(get(logged_in(app), "/account"))
    assert 'id="email"' in page and "alice@example.com" in page and "Not confirmed" in page
    found = account_forms(page)
    for action in ("/account/email/verify", "/account/email", "/account/notices"):
        assert found[action]["method"] == "post" and "csrf_token" in found[action]["fields"]  # type: ignore[operator]
    assert "Send the link again" in page
    assert "Tell me when my account is used from a new device" in page
    assert 'name="new_device" value="on" checked' in page
    bob = text(get(logged_in(app, "bob"), "/account"))
    assert "no e-mail address" in bob and "/account/email/verify" not in bob
    assert "Add an address" in bob


def test_changing_the_address_needs_a_recent_login_and_a_confirmation(
    app: Flask, clock: ManualClock
) -> None:
    user_id = add(app)
    client = logged_in(app)
    clock.advance(STEP_UP_AGE)
    stale = submit(client, "/account", "/account/email", {"email": "new@example.com"})
    assert path_of(stale).startswith("/reauth?next=")
    assert not sent(app, "verify_email")
    confirmed = submit(client, "/reauth", "/reauth", {"password": PASSWORD, "next": "/account"})
    assert path_of(confirmed) == "/account"

    bad = submit(client, "/account", "/account/email", {"email": "not an address"})
    assert bad.status_code == 400 and "That address cannot be used" in flashes(bad)
    assert 'value="not an address"' in text(bad)
    changed = submit(client, "/account", "/account/email", {"email": "new@example.com"})
    assert path_of(changed) == "/account"
    said = flashes(get(client, "/account"))
    assert "A link was sent to new@example.com" in said
    assert "your address stays alice@example.com" in said
    assert CoatCheck.state(app).users.get(user_id).email == "alice@example.com"  # type: ignore[union-attr]
    [mail] = sent(app, "verify_email")
    assert mail.to_addr == "new@example.com"
    path = f"/verify-email/{verify_link(app)}"
    assert submit(client, path, path, {}).status_code == 200
    assert CoatCheck.state(app).users.get(user_id).email == "new@example.com"  # type: ignore[union-attr]
    assert "new@example.com" in text(get(client, "/account"))


def test_the_new_device_notice_can_be_turned_off_and_on(app: Flask) -> None:
    user_id = add(app)
    client = logged_in(app)
    off = submit(client, "/account", "/account/notices", {})
    assert path_of(off) == "/account"
    assert CoatCheck.state(app).users.get(user_id).notify_new_device is False  # type: ignore[union-attr]
    page = get(client, "/account")
    assert "No more mails about new devices" in flashes(page)
    assert 'name="new_device" value="on">' in text(page)  # unticked
    submit(client, "/account", "/account/notices", {"new_device": "on"})
    assert CoatCheck.state(app).users.get(user_id).notify_new_device is True  # type: ignore[union-attr]


def test_stale_account_email_forms_show_the_account_again(app: Flask) -> None:
    user_id = add(app)
    client = logged_in(app)
    for action, data in (
        ("/account/notices", {}),
        ("/account/email/verify", {}),
        ("/account/email", {"email": "new@example.com"}),
    ):
        again = post(client, action, {"csrf_token": "stale", **data})
        assert again.status_code == 403 and STALE in text(again) and 'id="email"' in text(again)
    assert CoatCheck.state(app).users.get(user_id).notify_new_device is True  # type: ignore[union-attr]
    assert not sent(app, "verify_email")
    anonymous = post(browser(app), "/account/notices", {"csrf_token": "stale"})
    assert path_of(anonymous).startswith("/login")


def test_account_email_forms_need_a_login(app: Flask) -> None:
    client = browser(app)
    for action in ("/account/email/verify", "/account/email", "/account/notices"):
        refused = submit(client, "/forgot", action, {})
        assert path_of(refused).startswith("/login")


def test_unverified_users_reach_the_account_page_when_verification_is_required(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    app = timed_users(
        make_service(COATCHECK_PUBLIC_URL=PUBLIC, COATCHECK_REQUIRE_VERIFIED_EMAIL=True), clock
    )
    add(app)
    client = logged_in(app)
    assert get(client, "/account/sessions").status_code == 403
    page = get(client, "/account")
    assert page.status_code == 200 and "Send the link again" in text(page)
    submit(client, "/account", "/account/email/verify", {})
    path = f"/verify-email/{verify_link(app)}"
    assert submit(client, path, path, {}).status_code == 200
    assert get(client, "/account/sessions").status_code == 200


def test_recovery_pages_are_script_free(app: Flask) -> None:
    for path in ("/forgot", "/reset/nope", "/verify-email/nope"):
        page = get(browser(app), path)
        assert "<script" not in text(page)
        assert "script-src 'none'" in page.headers["Content-Security-Policy"]


def test_a_reset_from_a_logged_in_browser_logs_it_out_too(app: Flask) -> None:
    add(app)
    client = logged_in(app)
    token = reset_link(app)
    done = set_password(client, token, NEW_PASSWORD)
    assert path_of(done) == "/login?password_reset=1"
    page = get(client, "/login?password_reset=1")
    assert page.status_code == 200 and RESET_DONE in text(page)
    assert path_of(get(client, "/account")).startswith("/login")
    assert path_of(login(client, "alice", NEW_PASSWORD)) == "/account"
