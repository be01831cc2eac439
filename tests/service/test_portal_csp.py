"""A page that goes back to a site after its form allows that site's origin in its CSP.

Browsers hold a form's redirect to the page's ``form-action``: without it the
login of a forward-auth portal would stop at its own 303 to the site.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from flask import Flask

from ..ext.helpers import https_client
from .conftest import PASSWORD, add_user

RULES = {"rules": [{"domain": "*.example.com", "policy": "one_factor"}]}


def form_action(response: object) -> str:
    policy = response.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    found = re.search(r"form-action ([^;]+)", policy)
    assert found is not None, policy
    return found.group(1).strip()


def portal(make_service: Callable[..., Flask]) -> Flask:
    return make_service(
        COATCHECK_PUBLIC_URL="https://auth.example.com",
        COATCHECK_COOKIE_DOMAIN="example.com",
        COATCHECK_ACCESS_CONTROL=RULES,
    )


def test_the_login_page_allows_only_the_followed_site(make_service: Callable[..., Flask]) -> None:
    client = https_client(portal(make_service))
    rd = "https://app.example.com:8443/report?month=11"
    page = client.get(f"/login?rd={quote(rd, safe='')}")
    assert form_action(page) == "'self' https://app.example.com:8443"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]  # the passkey button
    for refused in ("https://evil.example/", "javascript:alert(1)", "//evil.example/"):
        assert form_action(client.get(f"/login?rd={quote(refused, safe='')}")) == "'self'"
    assert form_action(client.get("/login?next=/account/sessions")) == "'self'"
    assert form_action(client.get("/login")) == "'self'"


def test_a_wrong_password_page_still_allows_it(make_service: Callable[..., Flask]) -> None:
    app = portal(make_service)
    add_user(app, "alice")
    client = https_client(app)
    rd = "https://app.example.com/x"
    page = client.get(f"/login?rd={quote(rd, safe='')}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    form = {"csrf_token": token.group(1), "username": "alice", "next": rd}
    wrong = client.post("/login", data={**form, "password": "not the password at all"})
    assert wrong.status_code == 401 and form_action(wrong) == "'self' https://app.example.com"
    right = client.post("/login", data={**form, "password": PASSWORD})
    assert (right.status_code, right.headers["Location"]) == (303, rd)
    # No "Welcome back" waits on the portal for the next visit: the user went elsewhere.
    assert "Welcome back" not in client.get("/account").get_data(as_text=True)
