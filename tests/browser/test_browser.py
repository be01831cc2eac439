"""A real Chromium, driven by Playwright, against a real ``coatcheck serve``.

Screenshots of every page go to ``build/screenshots/`` (look at them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import unavailable
from ..service.served import Served, serve

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("COATCHECK_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "instance") as served:
        yield served


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def register(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/register")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_confirm]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/account")


def login(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/account")


def test_register_login_cookies_devices_and_logout(chromium: Any, server: Served) -> None:
    url = server.url
    laptop = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = laptop.new_page()
    page.goto(f"{url}/")
    shot(page, "01-index")
    page.goto(f"{url}/register")
    shot(page, "02-register")
    register(page, url, "alice")
    assert "alice" in page.inner_text("main")
    shot(page, "03-account")

    cookies = {c["name"]: c for c in laptop.cookies()}
    session = cookies["__Host-session"]
    assert session["secure"] is True and session["httpOnly"] is True
    assert session["sameSite"] == "Lax" and session["path"] == "/"
    assert session["domain"] == "127.0.0.1"  # host-only: no Domain attribute
    assert session["expires"] == -1  # a browser-session cookie: no Max-Age
    assert len(session["value"]) == 43
    visible = page.evaluate("document.cookie")
    assert "__Host-session" not in visible and session["value"] not in visible
    # Nor can a script that fetches the inspector learn it.
    inspected = page.evaluate("fetch('/api/inspect').then(r => r.text())")
    assert session["value"] not in inspected

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    other = phone.new_page()
    login(other, url, "alice")
    shot(other, "04-account-phone")

    page.goto(f"{url}/account/sessions")
    rows = page.locator("table tbody tr")
    assert rows.count() == 2
    shot(page, "05-devices")
    page.locator("table tbody tr", has_text="Revoke").locator("button").click()
    page.wait_for_load_state()
    assert page.locator("table tbody tr").count() == 1
    other.goto(f"{url}/account")
    assert "/login" in other.url  # the revoked device is logged out
    shot(other, "06-login-after-revoke-phone")

    page.goto(f"{url}/account/password")
    shot(page, "07-password")
    page.goto(f"{url}/inspect")
    shot(page, "08-inspect")
    page.goto(f"{url}/lessons")
    shot(page, "09-lessons")

    page.click("header form button")  # Log out
    page.wait_for_url(f"{url}/login?logged_out=1")
    assert "You are logged out" in page.inner_text("main")
    shot(page, "10-logged-out")
    assert "__Host-session" not in {c["name"] for c in laptop.cookies()}
    page.goto(f"{url}/account")
    assert "/login" in page.url
    laptop.close()
    phone.close()


def test_admin_pages(chromium: Any, server: Served) -> None:
    created = server.cli(
        "user", "create", "root", "--admin", "--password-stdin", input=PASSWORD + "\n"
    )
    assert created.returncode == 0, created.stderr
    server.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    login(page, server.url, "root")
    page.goto(f"{server.url}/admin")
    assert "alice" in page.inner_text("main")
    shot(page, "11-admin")
    narrow = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = narrow.new_page()
    login(small, server.url, "root")
    small.goto(f"{server.url}/admin")
    shot(small, "12-admin-phone")
    context.close()
    narrow.close()


def test_two_tabs_on_login_never_show_an_error_page(chromium: Any, server: Served) -> None:
    server.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    tab_a, tab_b = context.new_page(), context.new_page()
    for tab in (tab_a, tab_b):
        tab.goto(f"{server.url}/login")
        tab.fill("input[name=username]", "alice")
        tab.fill("input[name=password]", PASSWORD)
    tab_a.click("form.stack button[type=submit]")
    tab_a.wait_for_url(f"{server.url}/account")
    tab_b.click("form.stack button[type=submit]")  # its token is from before the login
    tab_b.wait_for_load_state()
    assert tab_b.url == f"{server.url}/account"
    assert "Error" not in tab_b.inner_text("main")
    assert "You are logged in as alice." in tab_b.inner_text("main")

    # Logged out in tab A, the logout form of tab B ends on the login page too.
    tab_b.goto(f"{server.url}/account/password")
    tab_a.click("header form button")
    tab_a.wait_for_url(f"{server.url}/login?logged_out=1")
    tab_b.click("header form button")
    tab_b.wait_for_url(f"{server.url}/login?logged_out=1")
    assert "Error" not in tab_b.inner_text("main")

    # An expired login form is shown again, with a fresh token that works.
    tab_b.fill("input[name=username]", "alice")
    tab_b.fill("input[name=password]", PASSWORD)
    context.clear_cookies()
    tab_b.click("form.stack button[type=submit]")
    tab_b.wait_for_load_state()
    assert "This form was open too long or in another tab" in tab_b.inner_text("main")
    tab_b.fill("input[name=password]", PASSWORD)
    tab_b.click("form.stack button[type=submit]")
    tab_b.wait_for_url(f"{server.url}/account")
    context.close()


PAGES = [
    "/",
    "/login",
    "/register",
    "/account",
    "/account/sessions",
    "/account/password",
    "/inspect",
    "/lessons",
    "/admin",
    "/no-such-page",
]
WIDTHS = {"wide": 1280, "narrow": 390}


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_every_page_fits_its_width(chromium: Any, server: Served, width: str) -> None:
    """Screenshot every page at 1280 and 390 px; nothing may be wider than the window."""
    server.cli("user", "create", "root", "--admin", "--password-stdin", input=PASSWORD + "\n")
    pixels = WIDTHS[width]
    context = chromium.new_context(
        viewport={"width": pixels, "height": 900}, is_mobile=pixels < 500
    )
    page = context.new_page()
    anonymous = ["/", "/login", "/register", "/no-such-page"]
    for path in anonymous:
        page.goto(f"{server.url}{path}")
        shot(page, f"{width}-anonymous{path.replace('/', '-') if path != '/' else '-index'}")
    login(page, server.url, "root")
    page.goto(f"{server.url}/logout")  # 405: an error page with the usual navigation
    shot(page, f"{width}-error-405")
    for path in PAGES:
        page.goto(f"{server.url}{path}")
        shot(page, f"{width}{path.replace('/', '-') if path != '/' else '-index'}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than {pixels}px"
    context.close()
