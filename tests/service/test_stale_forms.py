"""A page's form with an old token is shown again with a fresh one, never an error page.

Logging in or out in one tab changes the CSRF secret, so the forms of every
other tab hold tokens that no longer match.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from .test_pages import (
    BASE,
    NEW_PASSWORD,
    PASSWORD,
    add_user,
    browser,
    get,
    is_sent_to_login,
    logged_in,
    login,
    revoke_actions,
    text,
    token,
)

STALE = "This form was open too long or in another tab; please try again."


@pytest.fixture
def app(make_service: Callable[..., Flask]) -> Flask:
    return make_service()


def post(client: FlaskClient, path: str, data: dict[str, str], **kwargs: object) -> TestResponse:
    return client.post(path, data=data, base_url=BASE, **kwargs)  # type: ignore[arg-type]


def assert_shown_again(response: TestResponse, action: str) -> str:
    """Check ``response`` is the page of the form posting to ``action``, shown again."""
    assert response.status_code == 403
    page = text(response)
    assert STALE in page
    assert f'action="{action}"' in page
    assert "Error 403" not in page
    return page


@pytest.mark.parametrize("stale", ["not-a-token", None])
def test_login_form_is_shown_again_and_its_fresh_token_works(app: Flask, stale: str | None) -> None:
    add_user(app, "alice")
    client = browser(app)
    get(client, "/login")
    data = {"username": "alice", "password": PASSWORD, "next": "/account/sessions"}
    if stale is not None:
        data["csrf_token"] = stale
    page = assert_shown_again(post(client, "/login", data), "/login")
    assert 'value="alice"' in page and PASSWORD not in page
    assert 'name="next" value="/account/sessions"' in page
    again = post(client, "/login", {**data, "csrf_token": token(page)})
    assert again.status_code == 303 and again.location == "/account/sessions"


def test_register_form_is_shown_again(app: Flask) -> None:
    client = browser(app)
    get(client, "/register")
    data = {
        "csrf_token": "old",
        "username": "carol",
        "email": "carol@example.org",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    page = assert_shown_again(post(client, "/register", data), "/register")
    assert 'value="carol"' in page and 'value="carol@example.org"' in page
    assert PASSWORD not in page
    assert post(client, "/register", {**data, "csrf_token": token(page)}).status_code == 303


def test_password_form_is_shown_again_and_nothing_changes(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    data = {
        "csrf_token": "old",
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    page = assert_shown_again(post(client, "/account/password", data), "/account/password")
    assert login(browser(app), "alice").status_code == 303  # the old password still works
    done = post(client, "/account/password", {**data, "csrf_token": token(page)})
    assert done.status_code == 303


def test_two_tabs_on_login_the_second_is_logged_in(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    tab_a, tab_b = token(text(get(client, "/login"))), token(text(get(client, "/login")))
    fields = {"username": "alice", "password": PASSWORD}
    assert post(client, "/login", {**fields, "csrf_token": tab_a}).status_code == 303
    second = post(client, "/login", {**fields, "csrf_token": tab_b, "next": "/account/sessions"})
    assert second.status_code == 303 and second.location == "/account/sessions"
    assert "You are logged in as alice." in text(get(client, "/account/sessions"))


def test_register_in_a_tab_after_logging_in_in_another(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    tab_b = token(text(get(client, "/register")))
    assert login(client, "alice").status_code == 303
    data = {"csrf_token": tab_b, "username": "bob", "password": PASSWORD}
    response = post(client, "/register", {**data, "password_confirm": PASSWORD})
    assert response.status_code == 303 and response.location == "/account"


def test_two_tabs_logging_out(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    tab_a, tab_b = token(text(get(client, "/account"))), token(text(get(client, "/account")))
    assert post(client, "/logout", {"csrf_token": tab_a}).status_code == 303
    second = post(client, "/logout", {"csrf_token": tab_b})
    assert second.status_code == 303 and second.location == "/login?logged_out=1"


def test_a_stale_logout_asks_again_and_does_not_log_out(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    page = assert_shown_again(post(client, "/logout", {"csrf_token": "old"}), "/logout")
    assert "<h1>Log out?</h1>" in page
    assert get(client, "/account").status_code == 200
    assert post(client, "/logout", {"csrf_token": token(page)}).status_code == 303
    assert is_sent_to_login(get(client, "/account"))


def test_stale_device_forms_show_the_devices_page_again(app: Flask) -> None:
    add_user(app, "alice")
    logged_in(app, "alice")
    client = logged_in(app, "alice")
    [action] = revoke_actions(text(get(client, "/account/sessions")))
    page = assert_shown_again(post(client, action, {"csrf_token": "old"}), action)
    assert "<h1>Your devices</h1>" in page
    assert revoke_actions(page) == [action]  # nothing was revoked
    others = post(client, "/account/sessions/revoke-others", {"csrf_token": "old"})
    assert_shown_again(others, "/account/sessions/revoke-others")


def test_stale_admin_forms_show_the_admin_page_again(app: Flask) -> None:
    add_user(app, "root", "admin")
    bob = add_user(app, "bob")
    admin = logged_in(app, "root")
    action = f"/admin/users/{bob}/disable"
    page = assert_shown_again(post(admin, action, {"csrf_token": "old"}), action)
    assert "<h1>Admin</h1>" in page
    assert login(browser(app), "bob").status_code == 303  # not disabled


def test_a_stale_admin_form_of_a_non_admin_is_an_error_page(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    response = post(client, "/admin/users/1/disable", {"csrf_token": "old"})
    assert response.status_code == 403
    assert "Error 403" in text(response) and "<h1>Admin</h1>" not in text(response)


def test_a_cross_site_post_is_refused_not_shown_again(app: Flask) -> None:
    client = browser(app)
    form = token(text(get(client, "/login")))
    data = {"csrf_token": form, "username": "alice", "password": PASSWORD}
    response = post(client, "/login", data, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "Error 403" in text(response) and STALE not in text(response)


def test_an_api_client_posting_a_form_gets_json(app: Flask) -> None:
    response = post(app.test_client(), "/login", {"csrf_token": "old"})
    assert response.status_code == 403
    assert response.json is not None and set(response.json) == {"error", "message"}


def test_the_fresh_token_is_not_the_one_sent(app: Flask) -> None:
    client = browser(app)
    sent = token(text(get(client, "/login")))
    page = text(post(client, "/login", {"csrf_token": sent[:-2], "username": "x", "password": "y"}))
    assert re.findall(r'name="csrf_token" value="([^"]+)"', page)
    assert sent[:-2] not in page
