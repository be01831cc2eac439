"""A real Chromium, driven by Playwright, against a real ``coatcheck serve``.

Screenshots of every page go to ``build/screenshots/`` (look at them).
"""

from __future__ import annotations

import os
import re
import time
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
    alice = context.new_page()
    login(alice, server.url, "alice")
    _enrol(alice, server.url)
    alice.close()
    context.close()
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    login(page, server.url, "root")
    page.goto(f"{server.url}/admin")
    assert "alice" in page.inner_text("main")
    assert "Reset 2FA" in page.content()
    shot(page, "11-admin")
    page.click("summary:has-text('Manage alice')")
    page.click("button:has-text('Reset 2FA')")
    page.wait_for_load_state()
    assert "Reset alice's second factors?" in page.inner_text("main")
    shot(page, "11-admin-reset-2fa")
    page.click("button:has-text('Reset second factors')")
    page.wait_for_url(f"{server.url}/admin")
    assert "second factors are reset" in page.inner_text("main")
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
    "/account/security",
    "/reauth",
    "/inspect",
    "/lessons",
    "/admin",
    "/no-such-page",
]
WIDTHS = {"wide": 1280, "narrow": 390}


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_every_page_fits_its_width(chromium: Any, server: Served, width: str) -> None:
    """Screenshot every page at 1280 and 390 px; nothing may be wider than the window."""
    server.cli(
        "user",
        "create",
        "root",
        "--admin",
        "--email",
        "root@example.com",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    pixels = WIDTHS[width]
    context = chromium.new_context(
        viewport={"width": pixels, "height": 900}, is_mobile=pixels < 500
    )
    page = context.new_page()
    anonymous = ["/", "/login", "/register", "/forgot", "/no-such-page"]
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
    _recovery_pages(page, server, width)
    context.close()


def _fits(page: Any, name: str) -> None:
    shot(page, name)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} is {overflow}px wider than the window"


def _recovery_pages(page: Any, server: Served, width: str) -> None:
    """Screenshot the pages of SPEC §9: the e-mail section, verification, forgot, reset."""
    url = server.url
    page.goto(f"{url}/account")
    with page.expect_navigation():
        page.click("text=Send the link again")
    assert "is on its way" in page.inner_text("main")
    _fits(page, f"{width}-account-email")
    page.goto(f"{url}{mail_link(server, '/verify-email', 'root@example.com')}")
    _fits(page, f"{width}-verify-email")
    with page.expect_navigation():
        page.click("text=Confirm my address")
    assert "root@example.com is confirmed" in page.inner_text("main")
    _fits(page, f"{width}-verify-email-done")
    page.goto(f"{url}/forgot")
    page.fill("input[name=login]", "root")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/forgot?sent=1")
    _fits(page, f"{width}-forgot-sent")
    page.goto(f"{url}{mail_link(server, '/reset', 'root@example.com')}")
    assert page.locator("input[name=new_password]").count() == 1
    _fits(page, f"{width}-reset")
    page.goto(f"{url}/reset/no-such-link")
    _fits(page, f"{width}-reset-invalid")


def mail_link(server: Served, path: str, to: str) -> str:
    """Deliver what is due; return the path of the newest ``path`` link mailed to ``to``.

    The service's own sender may deliver it first: either way it is in the mailbox.
    """
    deadline = time.monotonic() + 20
    while True:
        server.cli("mail", "send-pending")
        listed = server.cli("mail", "list").stdout
        for line in listed.splitlines()[1:]:  # newest first
            columns = line.split()
            if len(columns) > 3 and columns[1] == "sent" and columns[3] == to:
                body = server.cli("mail", "show", columns[0]).stdout
                found = re.search(rf"https?://[^/\s]+({re.escape(path)}/[A-Za-z0-9_-]+)", body)
                if found is not None:
                    return found.group(1)
        assert time.monotonic() < deadline, f"no {path} link mailed to {to}:\n{listed}"
        time.sleep(0.5)


def test_forgotten_password_by_mail(chromium: Any, server: Served) -> None:
    """Forgot your password? → the mailed link → a new password → log in with it."""
    url = server.url
    server.cli(
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/login")
    page.click("text=Forgot your password?")
    page.wait_for_url(f"{url}/forgot")
    page.fill("input[name=login]", "alice@example.com")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/forgot?sent=1")
    assert "is on its way" in page.inner_text("main")
    reset = mail_link(server, "/reset", "alice@example.com")
    page.goto(f"{url}{reset}")
    new_password = "lantern quarry meadow"
    page.fill("input[name=new_password]", new_password)
    page.fill("input[name=new_password_confirm]", new_password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/login?password_reset=1")
    assert "Your password is changed" in page.inner_text("main")
    shot(page, "recovery-login-after-reset")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)  # the old one no longer works
    with page.expect_navigation():
        page.click("form.stack button[type=submit]")
    assert "Wrong username or password" in page.inner_text("main")
    page.fill("input[name=password]", new_password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/account")
    assert "alice" in page.inner_text("main")
    page.goto(f"{url}{reset}")  # the link is spent
    assert "cannot be used" in page.inner_text("main")
    context.close()


def _secret(page: Any) -> str:
    """Return the TOTP secret an enrolment page shows (its URI, and grouped for reading)."""
    uri = page.text_content("code.uri")
    secret = uri.split("secret=", 1)[1].split("&", 1)[0]
    assert page.text_content("p.secret code").replace(" ", "") == secret
    return str(secret)


def _enrol(page: Any, url: str, name: str = "Phone") -> tuple[str, list[str]]:
    """Add an authenticator app on the security page; return its secret and recovery codes."""
    page.goto(f"{url}/account/security")
    page.fill("form[action='/account/security/totp'] input[name=name]", name)
    page.click("form[action='/account/security/totp'] button[type=submit]")
    page.wait_for_url(f"{url}/account/security/totp")
    secret = _secret(page)
    page.fill("input[name=code]", _code(secret))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/account/security/recovery-codes")
    codes = page.locator("ol.codes li").all_inner_texts()
    page.click("text=I have saved them")
    page.wait_for_url(f"{url}/account/security")
    return secret, codes


def _code(secret: str, ahead: int = 0) -> str:
    import pyotp

    return str(pyotp.TOTP(secret).at(time.time() + ahead * 30))


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_second_factor_pages(chromium: Any, server: Served, width: str) -> None:
    """Enrol an authenticator app from the page, log in with it; screenshot every step."""
    server.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    pixels = WIDTHS[width]
    context = chromium.new_context(
        viewport={"width": pixels, "height": 900}, is_mobile=pixels < 500
    )
    page = context.new_page()
    url = server.url

    def fits(name: str) -> None:
        shot(page, f"{width}-2fa-{name}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px wider than {pixels}px"

    login(page, url, "alice")
    page.goto(f"{url}/account/security")
    fits("01-security-empty")
    page.fill("form[action='/account/security/totp'] input[name=name]", "Phone")
    page.click("form[action='/account/security/totp'] button[type=submit]")
    page.wait_for_url(f"{url}/account/security/totp")
    page.click("details summary")
    assert page.locator("figure.qr svg").count() == 1
    fits("02-totp-enrolment")
    page.fill("input[name=code]", "000000")
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state()
    assert "That code is wrong" in page.inner_text("main")
    page.click("details summary")
    fits("03-totp-wrong-code")
    secret = _secret(page)
    page.fill("input[name=code]", _code(secret))
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/account/security/recovery-codes")
    codes = page.locator("ol.codes li").all_inner_texts()
    assert len(codes) == 10
    fits("04-recovery-codes")
    page.click("text=I have saved them")
    page.wait_for_url(f"{url}/account/security")
    fits("05-security-with-app")
    page.goto(f"{url}/account")
    fits("06-account")

    page.click("header form button")  # Log out
    page.wait_for_url(f"{url}/login?logged_out=1")
    fits("07-login-with-passkey")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/login")
    assert "Code from your authenticator app" in page.inner_text("main")
    fits("08-second-step")
    page.fill("input[name=code]", "111111")
    page.click("form.stack button[type=submit]")
    page.wait_for_load_state()
    assert "That code is wrong" in page.inner_text("main")
    fits("09-second-step-wrong")
    page.click("text=Use a recovery code")
    fits("10-second-step-recovery")
    page.fill("input[name=code]", codes[0])
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{url}/account")
    assert "Two-step" in page.inner_text("main")

    page.goto(f"{url}/reauth?next=/account/security")
    fits("11-reauth")
    page.fill("form:has(input[name=method]) input[name=code]", _code(secret, ahead=1))
    page.click("form:has(input[name=method]) button[type=submit]")
    page.wait_for_url(f"{url}/account/security")
    page.click("form.rename button")  # rename with the name unchanged: a flash
    page.wait_for_url(f"{url}/account/security")
    page.click("ul.factors form:not(.rename) button")  # Remove: the confirmation page
    page.wait_for_load_state()
    assert "Are you sure?" in page.inner_text("main")
    fits("12-remove-confirm")
    context.close()
