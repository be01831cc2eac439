"""Small things people notice: audit details in words, lessons and inspector layout, the
time format, the anonymous CSRF cookie after login, and what ``coatcheck serve`` says."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from coatcheck.service.admin import audit_detail

from ..conftest import free_port, wait_for_port
from .served import CLI, service_env
from .test_pages import add_user, browser, get, logged_in, login, text

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
SHOWN = re.compile(r">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>")


@pytest.fixture
def app(make_service: Callable[..., Flask]) -> Flask:
    return make_service()


def visible(page: str) -> str:
    """Return the page without its tags (attributes such as datetime= are not seen)."""
    return re.sub(r"<[^>]+>", " ", page)


# -- the audit log ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "words"),
    [
        ({"via": "password", "remember": False}, "With a password."),
        ({"remember": True, "via": "password"}, "With a password; kept logged in on the device."),
        ({"via": "remember", "remember": True}, "By a remember-me cookie."),
        ({"via": "token", "family": "ab12"}, "For an API token; token family ab12."),
        ({"before": [], "after": ["admin", "staff"]}, "Roles were none; now admin, staff."),
        ({"sessions_revoked": 1}, "1 session ended."),
        ({"revoked": 3}, "3 sessions ended."),
        ({"scope": "pair"}, "Too many failures for this account from this address."),
        ({"something_new": "x"}, "Something new: x."),
        (None, ""),
    ],
)
def test_audit_details_read_as_words(detail: dict[str, object] | None, words: str) -> None:
    assert audit_detail(detail) == words


def test_the_admin_audit_log_shows_details_as_words(app: Flask) -> None:
    add_user(app, "root", "admin")
    admin = logged_in(app, "root")
    page = text(get(admin, "/admin"))
    assert "With a password." in page
    assert "remember: False" not in page and "via: password" not in page


# -- lessons and inspector ----------------------------------------------------------


def test_lessons_are_cards_with_unbroken_paths_and_distinct_links(app: Flask) -> None:
    page = text(get(browser(app), "/lessons"))
    assert "<table" not in page
    for path in ("/sessions/&lt;key&gt;", "/set-cookie", "/check-cookie", "/set", "/get"):
        assert f'<code class="nowrap">GET {path}</code>' in page
    links = re.findall(r'<a href="/inspect">([^<]+)</a>', page)
    repeated = [link for link in links if links.count(link) > 1 and "cookie inspector" not in link]
    assert len(repeated) <= 2, repeated  # /set and /get both watch username


def test_inspector_keeps_attributes_whole_and_uses_the_pages_time_format(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    page = text(get(client, "/inspect"))
    assert '<td class="attribute"><code>SameSite=Lax</code></td>' in page
    assert len(SHOWN.findall(page)) == 4  # created, last seen, expires, authenticated
    assert not ISO.search(visible(page))


def test_inspector_says_the_anonymous_csrf_cookie_is_not_used_after_login(app: Flask) -> None:
    add_user(app, "alice")
    client = browser(app)
    anonymous = text(get(client, "/inspect"))
    assert "not used while you are logged in" not in anonymous
    assert login(client, "alice").status_code == 303
    page = text(get(client, "/inspect"))
    assert "sent, not used while you are logged in" in page
    assert "Nothing is checked against it now." in page


def test_times_on_account_pages_use_one_format(app: Flask) -> None:
    add_user(app, "alice")
    client = logged_in(app, "alice")
    for path in ("/account", "/account/sessions", "/inspect"):
        page = text(get(client, path))
        assert SHOWN.search(page), path
        assert not ISO.search(visible(page)), path


# -- coatcheck serve --------------------------------------------------------------------


def test_serve_prints_its_url_once_listening(tmp_path: Path) -> None:
    port = free_port()
    instance = tmp_path / "instance"
    out = tmp_path / "stdout.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port), "--instance", str(instance)],
            env=service_env(),
            stdout=sink,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc)
        deadline = time.monotonic() + 10
        while b"running on" not in out.read_bytes():
            assert time.monotonic() < deadline, "no start message"
            time.sleep(0.05)
        printed = out.read_text()
        assert f"coatcheck is running on http://127.0.0.1:{port}" in printed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
