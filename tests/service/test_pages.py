"""The HTML pages: forms, CSRF, login and logout, devices, password, admin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.passwords import PasswordHasher
from coatcheck.service import create_app

from ..conftest import TEST_SECRET_KEY

BASE = "https://localhost"
PASSWORD = "plum umbrella orbit"
NEW_PASSWORD = "lantern quarry meadow"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "COATCHECK_INSTANCE": str(tmp_path / "instance"),
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
        }
    )
    state = CoatCheck.state(app)
    state.hasher = PasswordHasher.fast_for_tests()
    yield app
    state.users.close()
    state.store.close()


class Forms(HTMLParser):
    """Collect every form of a page with its method, action and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"method": values.get("method"), "action": values.get("action")})
            self.forms[-1]["fields"] = {}
        elif tag in ("input", "button") and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value")


def forms(html: str) -> list[dict[str, Any]]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def get(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    return client.get(path, base_url=BASE, **kwargs)


def submit(
    client: FlaskClient, page: str, action: str, data: dict[str, str], **kwargs: Any
) -> TestResponse:
    """Load ``page`` for its CSRF token, then POST ``data`` to ``action``."""
    data = {"csrf_token": token(text(get(client, page))), **data}
    return client.post(action, data=data, base_url=BASE, **kwargs)


def register(client: FlaskClient, username: str, password: str = PASSWORD) -> TestResponse:
    return submit(
        client,
        "/register",
        "/register",
        {"username": username, "email": "", "password": password, "password_confirm": password},
    )


def login(
    client: FlaskClient, username: str, password: str = PASSWORD, **fields: str
) -> TestResponse:
    return submit(
        client, "/login", "/login", {"username": username, "password": password, **fields}
    )


def browser(app: Flask) -> FlaskClient:
    """Return a test client that asks for HTML, as browsers do."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT"] = "text/html,application/xhtml+xml,*/*;q=0.8"
    return client


def add_user(app: Flask, name: str, *roles: str) -> int:
    state = CoatCheck.state(app)
    return state.users.create_user(name, state.hasher.hash(PASSWORD), roles=roles).id


def logged_in(app: Flask, name: str, user_agent: str | None = None) -> FlaskClient:
    client = browser(app)
    if user_agent is not None:
        client.environ_base["HTTP_USER_AGENT"] = user_agent
    assert login(client, name).status_code == 303
    return client


def is_sent_to_login(response: TestResponse) -> bool:
    return response.status_code in (302, 303) and response.location.startswith("/login")


def revoke_actions(html: str) -> list[str]:
    return re.findall(r'action="(/account/sessions/[0-9a-f]+/revoke)"', html)


# -- register, login, logout -----------------------------------------------------


def test_register_logs_in_and_the_account_page_shows_the_user(app: Flask) -> None:
    client = browser(app)
    response = register(client, "alice")
    assert response.status_code == 303 and response.location == "/account"
    page = text(get(client, "/account"))
    assert "alice" in page
    assert "Your account is ready" in page
    assert "Account created" in page and "Logged in" in page  # recent security events


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"password_confirm": "something else entirely"}, 400, "do not match"),
        ({"password": "short", "password_confirm": "short"}, 400, "at least 12 characters"),
        ({"username": "no spaces allowed"}, 400, "A username is 3 to 64 characters"),
        ({"email": "not-an-address"}, 400, "An email address has one"),
    ],
)
def test_register_refuses_bad_input(
    app: Flask, fields: dict[str, str], status: int, message: str
) -> None:
    data = {"username": "alice", "email": "", "password": PASSWORD, "password_confirm": PASSWORD}
    client = browser(app)
    response = submit(client, "/register", "/register", data | fields)
    assert response.status_code == status
    page = text(response)
    assert message in page
    assert PASSWORD not in page and 'value="short"' not in page
    assert is_sent_to_login(get(client, "/account"))


def test_register_refuses_a_taken_username(app: Flask) -> None:
    add_user(app, "alice")
    response = register(browser(app), "ALICE")
    assert response.status_code == 409
    assert "That username is taken." in text(response)
    assert 'value="ALICE"' in text(response)


def test_login_failure_is_401_keeps_the_username_and_never_echoes_the_password(
    app: Flask,
) -> None:
    add_user(app, "alice")
    client = browser(app)
    response = login(client, "alice", "the-wrong-password-xyz")
    assert response.status_code == 401
    page = text(response)
    assert "Wrong username or password." in page
    assert 'value="alice"' in page
    assert "the-wrong-password-xyz" not in page
    assert is_sent_to_login(get(client, "/account"))


def test_login_unknown_user_looks_the_same(app: Flask) -> None:
    response = login(browser(app), "nobody")
    assert response.status_code == 401
    assert "Wrong username or password." in text(response)


def test_login_is_throttled_after_five_failures(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    for _ in range(5):
        assert login(client, "alice", "not the password!").status_code == 401
    response = login(client, "alice")  # even the right password
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert re.search(r"Try again in \d+ minutes?\.", text(response))
    assert is_sent_to_login(get(client, "/account"))


def test_login_remember_me_box(app: Flask) -> None:
    add_user(app, "alice")
    page = text(get(browser(app), "/login"))
    assert "Keep me logged in on this device (30 days)" in page
    client = browser(app)
    assert login(client, "alice", remember="on").status_code == 303
    names = {cookie.key for cookie in client._cookies.values()}
    assert any("remember" in name for name in names), names


def test_login_follows_a_safe_next(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    sent = get(client, "/account/sessions")
    assert is_sent_to_login(sent)
    page = text(get(client, sent.location))
    assert 'name="next" value="/account/sessions"' in page
    response = login(client, "alice", next="/account/sessions")
    assert response.status_code == 303 and response.location == "/account/sessions"


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_login_ignores_an_unsafe_next(app: Flask, target: str) -> None:
    add_user(app, "alice")
    client = browser(app)
    page = text(get(client, "/login", query_string={"next": target}))
    assert 'name="next"' not in page
    response = login(client, "alice", next=target)
    assert response.status_code == 303 and response.location == "/account"


def test_login_page_sends_a_logged_in_user_to_the_account(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    response = get(client, "/login")
    assert response.status_code == 303 and response.location == "/account"


def test_logout(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    response = submit(client, "/account", "/logout", {})
    assert response.status_code == 303 and response.location.startswith("/login")
    assert "You are logged out." in text(get(client, response.location))
    assert is_sent_to_login(get(client, "/account"))


def test_logout_is_post_only(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    assert get(client, "/logout").status_code == 405
    assert get(client, "/account").status_code == 200


@pytest.mark.parametrize("path", ["/login", "/register", "/logout", "/account/password"])
def test_a_post_without_a_csrf_token_is_refused(app: Flask, path: str) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    data = {"username": "alice", "password": PASSWORD}
    response = client.post(path, data=data, base_url=BASE)
    if path in ("/login", "/register"):
        # Already logged in (in another tab, say): on to the account, as a GET would.
        assert response.status_code == 303 and response.location == "/account"
    else:
        assert response.status_code == 403
    assert get(client, "/account").status_code == 200  # the logout did not happen
    assert "alice" in text(get(client, "/account"))


# -- devices and password ------------------------------------------------------------


def test_account_sessions_lists_devices_and_revokes_another(app: Flask) -> None:
    add_user(app, "alice")
    laptop = logged_in(app, "alice", FIREFOX)
    phone = logged_in(app, "alice", SAFARI_IPHONE)
    page = text(get(laptop, "/account/sessions"))
    assert "Firefox on Windows" in page and "Safari on iOS" in page
    assert page.count("This device") == 1
    [action] = revoke_actions(page)  # no button for this device
    response = submit(laptop, "/account/sessions", action, {})
    assert response.status_code == 303 and response.location == "/account/sessions"
    page = text(get(laptop, "/account/sessions"))
    assert "That device is logged out." in page
    assert "Safari on iOS" not in page
    assert is_sent_to_login(get(phone, "/account"))
    assert get(laptop, "/account").status_code == 200


def test_revoking_a_session_that_is_not_yours_is_an_error_message(app: Flask) -> None:
    add_user(app, "alice")
    add_user(app, "bob")
    alice = logged_in(app, "alice")
    bob = logged_in(app, "bob")
    bobs_other = logged_in(app, "bob")
    [action] = revoke_actions(text(get(bob, "/account/sessions")))
    response = submit(alice, "/account/sessions", action, {}, follow_redirects=True)
    assert response.status_code == 200
    assert "You have no session with that handle" in text(response)
    assert get(bobs_other, "/account").status_code == 200


def test_log_out_everywhere_else(app: Flask) -> None:
    add_user(app, "alice")
    clients = [logged_in(app, "alice") for _ in range(3)]
    response = submit(clients[0], "/account/sessions", "/account/sessions/revoke-others", {})
    assert response.status_code == 303
    assert "2 sessions ended" in text(get(clients[0], "/account/sessions"))
    assert get(clients[0], "/account").status_code == 200
    assert all(is_sent_to_login(get(c, "/account")) for c in clients[1:])


def password_change(client: FlaskClient, current: str, new: str, confirm: str) -> TestResponse:
    data = {"current_password": current, "new_password": new, "new_password_confirm": confirm}
    return submit(client, "/account/password", "/account/password", data)


def test_password_change(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    other = logged_in(app, "alice")
    response = password_change(client, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303 and response.location == "/account"
    page = text(get(client, "/account"))
    assert "Password changed. Your other sessions were logged out." in page
    assert "Password changed" in page.split("Recent security events")[1]
    assert is_sent_to_login(get(other, "/account"))
    assert login(browser(app), "alice", PASSWORD).status_code == 401
    assert login(browser(app), "alice", NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("current", "new", "confirm", "status", "message"),
    [
        ("wrong password here", NEW_PASSWORD, NEW_PASSWORD, 401, "current password is not"),
        (PASSWORD, "tiny", "tiny", 400, "at least 12 characters"),
        (PASSWORD, NEW_PASSWORD, "something else", 400, "do not match"),
    ],
)
def test_password_change_refusals(
    app: Flask, current: str, new: str, confirm: str, status: int, message: str
) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    response = password_change(client, current, new, confirm)
    assert response.status_code == status
    page = text(response)
    assert message in page
    assert current not in page and new not in page
    assert login(browser(app), "alice", PASSWORD).status_code == 303


# -- admin ------------------------------------------------------------------------------


def test_admin_is_for_admins_only(app: Flask) -> None:
    bob = add_user(app, "bob")
    assert is_sent_to_login(get(browser(app), "/admin"))
    client = logged_in(app, "bob")
    assert get(client, "/admin").status_code == 403
    for action in ("roles", "disable", "logout-everywhere"):
        path = f"/admin/users/{bob}/{action}"
        response = submit(client, "/account", path, {"roles": "admin"})
        assert response.status_code == 403
    assert CoatCheck.state(app).users.get(bob).roles == ()  # type: ignore[union-attr]


def test_admin_page_lists_users_sessions_and_events(app: Flask) -> None:
    add_user(app, "root", "admin")
    add_user(app, "bob")
    logged_in(app, "bob", FIREFOX)
    admin = logged_in(app, "root")
    page = text(get(admin, "/admin"))
    assert "bob" in page and "root" in page
    assert 'class="table-scroll"' in page
    assert "Firefox on Windows" in page
    assert "Logged in" in page
    assert page.count('<div class="hint">Password</div>') == 2  # how each session logged in


def test_admin_sets_roles(app: Flask) -> None:
    add_user(app, "root", "admin")
    bob = add_user(app, "bob")
    bobs = logged_in(app, "bob")
    admin = logged_in(app, "root")
    response = submit(admin, "/admin", f"/admin/users/{bob}/roles", {"roles": "Staff, editor,"})
    assert response.status_code == 303 and response.location == "/admin"
    assert "Roles of bob are now: editor, staff." in text(get(admin, "/admin"))
    assert CoatCheck.state(app).users.get(bob).roles == ("editor", "staff")  # type: ignore[union-attr]
    assert "editor" in text(get(bobs, "/account"))  # live sessions follow


def test_admin_roles_refusals(app: Flask) -> None:
    root = add_user(app, "root", "admin")
    bob = add_user(app, "bob")
    admin = logged_in(app, "root")
    submit(admin, "/admin", f"/admin/users/{bob}/roles", {"roles": "no such role!"})
    assert "Roles not changed" in text(get(admin, "/admin"))
    submit(admin, "/admin", f"/admin/users/{root}/roles", {"roles": "staff", "confirmed": "yes"})
    assert "root is the last active admin and cannot lose the admin role" in text(
        get(admin, "/admin")
    )
    submit(admin, "/admin", "/admin/users/999/roles", {"roles": "staff"})
    assert "There is no user with ID 999." in text(get(admin, "/admin"))
    users = CoatCheck.state(app).users
    assert users.get(root).roles == ("admin",)  # type: ignore[union-attr]
    assert users.get(bob).roles == ()  # type: ignore[union-attr]


def test_admin_disables_a_user_and_their_session_dies(app: Flask) -> None:
    root = add_user(app, "root", "admin")
    bob = add_user(app, "bob")
    bobs = logged_in(app, "bob")
    admin = logged_in(app, "root")
    asked = submit(admin, "/admin", f"/admin/users/{bob}/disable", {})
    assert asked.status_code == 200 and "Disable bob?" in text(asked)
    assert not is_sent_to_login(get(bobs, "/account"))  # nothing happened yet
    response = submit(admin, "/admin", f"/admin/users/{bob}/disable", {"confirmed": "yes"})
    assert response.status_code == 303
    page = text(get(admin, "/admin"))
    assert "bob is disabled and logged out everywhere." in page
    assert is_sent_to_login(get(bobs, "/account"))
    assert login(browser(app), "bob").status_code == 401
    submit(admin, "/admin", f"/admin/users/{root}/disable", {"confirmed": "yes"})
    assert "root is the last active admin and cannot be disabled" in text(get(admin, "/admin"))
    # Enabled again (no confirmation needed to give back): bob logs in.
    assert submit(admin, "/admin", f"/admin/users/{bob}/enable", {}).status_code == 303
    assert "bob is enabled again and can log in." in text(get(admin, "/admin"))
    assert login(browser(app), "bob").status_code == 303


def test_admin_logs_a_user_out_everywhere(app: Flask) -> None:
    add_user(app, "root", "admin")
    bob = add_user(app, "bob")
    clients = [logged_in(app, "bob") for _ in range(2)]
    admin = logged_in(app, "root")
    asked = submit(admin, "/admin", f"/admin/users/{bob}/logout-everywhere", {})
    assert "Log bob out everywhere?" in text(asked)
    assert not any(is_sent_to_login(get(c, "/account")) for c in clients)
    submit(admin, "/admin", f"/admin/users/{bob}/logout-everywhere", {"confirmed": "yes"})
    assert "bob is logged out everywhere (2 sessions ended)." in text(get(admin, "/admin"))
    assert all(is_sent_to_login(get(c, "/account")) for c in clients)
    assert login(browser(app), "bob").status_code == 303  # not disabled


def test_removing_a_role_asks_first_and_adding_one_does_not(app: Flask) -> None:
    add_user(app, "root", "admin")
    bob = add_user(app, "bob", "editor", "staff")
    admin = logged_in(app, "root")
    users = CoatCheck.state(app).users
    asked = submit(admin, "/admin", f"/admin/users/{bob}/roles", {"roles": "staff"})
    page = text(asked)
    assert asked.status_code == 200 and "Take the role editor from bob?" in page
    assert 'name="confirmed" value="yes"' in page and 'name="roles" value="staff"' in page
    assert "<script" not in page
    assert users.get(bob).roles == ("editor", "staff")  # type: ignore[union-attr]
    submit(admin, "/admin", f"/admin/users/{bob}/roles", {"roles": "staff", "confirmed": "yes"})
    assert users.get(bob).roles == ("staff",)  # type: ignore[union-attr]
    added = submit(admin, "/admin", f"/admin/users/{bob}/roles", {"roles": "staff, ops"})
    assert added.status_code == 303
    assert users.get(bob).roles == ("ops", "staff")  # type: ignore[union-attr]


def test_admin_audit_log_pages(app: Flask) -> None:
    add_user(app, "root", "admin")
    admin = logged_in(app, "root")
    users = CoatCheck.state(app).users
    for n in range(1, 61):
        users.record_event(f"marker_{n:03d}")
    total = users.count_events()
    first = text(get(admin, "/admin"))
    assert f"{total} events, newest first. Page 1 of 2." in first
    assert "Marker 060" in first and "Marker 001" not in first
    assert "page=2" in first and "Newer" not in first
    second = text(get(admin, "/admin", query_string={"page": 2}))
    assert "Marker 001" in second and "Marker 060" not in second
    assert "Newer" in second and "Older" not in second
    assert second.count("<time") - second.split('id="audit"')[0].count("<time") == total - 50
    for odd in ("999", "0", "-3", "many"):
        page = text(get(admin, "/admin", query_string={"page": odd}))
        assert "Page 2 of 2." in page if odd == "999" else "Page 1 of 2." in page


# -- every page -----------------------------------------------------------------------------


def all_pages(app: Flask) -> list[str]:
    """Return every page as an anonymous visitor, a user and an admin sees it."""
    add_user(app, "root", "admin")
    add_user(app, "alice")
    anonymous = browser(app)
    pages = [text(get(anonymous, path)) for path in ("/", "/register", "/login")]
    logged_in(app, "root", FIREFOX)
    admin = logged_in(app, "root")
    paths = ["/", "/account", "/account/sessions", "/account/password", "/admin"]
    return pages + [text(get(admin, path)) for path in paths]


def test_every_form_posts_with_a_csrf_token(app: Flask) -> None:
    pages = all_pages(app)
    assert sum(len(forms(page)) for page in pages) > 10
    for page in pages:
        for form in forms(page):
            assert form["method"] == "post", form
            assert form["fields"].get("csrf_token"), form


#: The one script a page may load: the service's own, for WebAuthn (SPEC §8).
OWN_SCRIPT = '<script src="/static/webauthn.js" defer></script>'


def test_no_page_has_scripts_or_inline_styles(app: Flask) -> None:
    for page in all_pages(app):
        assert "<script" not in page.lower().replace(OWN_SCRIPT, "")
        assert " style=" not in page.lower()
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", page)  # no event handler attributes


def test_pages_are_served_with_a_csp_that_forbids_scripts(app: Flask) -> None:
    response = get(browser(app), "/")
    assert response.status_code == 200
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]


def test_index_greets_a_logged_in_user(app: Flask) -> None:
    add_user(app, "alice")
    anonymous = text(get(browser(app), "/"))
    assert 'href="/register"' in anonymous and 'href="/login"' in anonymous
    assert 'href="/inspect"' in anonymous and 'href="/lessons"' in anonymous
    assert "Hello, alice." in text(get(logged_in(app, "alice"), "/"))
