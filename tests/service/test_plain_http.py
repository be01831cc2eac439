"""Plain HTTP at an address that is not this machine: say why logins fail, and how to fix it.

Browsers refuse Secure cookies over plain HTTP except from loopback hosts, so
at a LAN address the double-submit CSRF cookie never comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask

from .test_pages import PASSWORD, add_user, browser, text, token

LAN = "http://192.168.1.20:5555"
EXPLAINED = ("Logging in cannot work at this address", "HTTPS", "COATCHECK_COOKIE_SECURE=false")


@pytest.fixture
def app(make_service: Callable[..., Flask]) -> Flask:
    return make_service()


def explains(page: str) -> bool:
    return all(words in page for words in EXPLAINED)


@pytest.mark.parametrize("path", ["/login", "/register"])
@pytest.mark.parametrize("base", [LAN, "http://devbox.internal", "http://[fd00::5]:8000"])
def test_login_and_register_explain_plain_http(app: Flask, path: str, base: str) -> None:
    page = text(browser(app).get(path, base_url=base))
    assert explains(page)
    assert base.removeprefix("http://") in page


@pytest.mark.parametrize(
    "base",
    [
        "https://192.168.1.20",
        "http://localhost:5555",
        "http://127.0.0.1:5555",
        "http://[::1]:5555",
        "http://app.localhost",
    ],
)
def test_no_explanation_where_the_cookies_work(app: Flask, base: str) -> None:
    assert not explains(text(browser(app).get("/login", base_url=base)))


def test_no_explanation_when_secure_cookies_are_off(make_service: Callable[..., Flask]) -> None:
    app = make_service(COATCHECK_COOKIE_SECURE=False)
    assert not explains(text(browser(app).get("/login", base_url=LAN)))


def test_no_explanation_behind_a_tls_proxy(app: Flask) -> None:
    page = browser(app).get("/login", base_url=LAN, headers={"X-Forwarded-Proto": "https"})
    assert not explains(text(page))


def test_the_failed_login_explains_plain_http(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    form_token = token(text(client.get("/login", base_url=LAN)))
    client.delete_cookie("__Host-csrf", domain="192.168.1.20")  # what the browser does
    response = client.post(
        "/login",
        data={"csrf_token": form_token, "username": "alice", "password": PASSWORD},
        base_url=LAN,
    )
    assert response.status_code == 403
    assert explains(text(response))


def test_the_csrf_failure_page_explains_plain_http(app: Flask) -> None:
    @app.post("/test-form")
    def test_form() -> str:
        return "sent"

    response = browser(app).post("/test-form", data={"csrf_token": "x"}, base_url=LAN)
    assert response.status_code == 403
    assert "This form has expired" in text(response) and explains(text(response))


def test_plain_http_is_logged_once(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = browser(app)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            client.get("/login", base_url=LAN)
        client.get("/login", base_url="http://127.0.0.1:5555")
    warnings = [r for r in caplog.records if "COATCHECK_COOKIE_SECURE=false" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "192.168.1.20:5555" in warnings[0].getMessage()
