"""A real Chromium through docs/proxies/nginx.conf: the portal, and back, and single sign-on.

Chromium resolves every example.com name to 127.0.0.1 and talks TLS to nginx
on its free port, as it would to a deployment; nothing is faked between the
address bar and the applications.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import unavailable
from .harness import PASSWORD, Stack

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("COATCHECK_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--host-resolver-rules=MAP *.example.com 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


def shown(page: Any) -> dict[str, Any]:
    """Return what the echo application answered (Chromium shows JSON as text)."""
    answer: dict[str, Any] = json.loads(page.inner_text("body"))
    return answer


def test_login_at_the_portal_returns_to_the_page_and_opens_the_other_sites(
    chromium: Any, nginx_stack: Stack
) -> None:
    stack = nginx_stack
    context = chromium.new_context(ignore_https_errors=True)
    page = context.new_page()
    original = stack.url("app.example.com", "/report?month=11&year=2026")
    page.goto(original)
    assert page.url.startswith(stack.portal("/login?rd="))
    assert page.inner_text("[data-asked-by]").startswith("app.example.com asked you to log in")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "proxy-01-portal-login.png"), full_page=True)
    page.fill("input[name=username]", "erin")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("input[name=code]")  # erin has an authenticator app
    assert "app.example.com" in page.inner_text("[data-asked-by]")
    page.fill("input[name=code]", stack.authenticators["erin"].code())
    with page.expect_navigation(url=original):
        page.click("form.stack button[type=submit]")
    assert page.url == original
    assert shown(page) == {"site": "app", "path": "/report?month=11&year=2026", "user": "erin"}
    page.screenshot(path=str(SHOTS / "proxy-02-back-at-the-app.png"), full_page=True)

    # Single sign-on: the other site, two_factor at that, needs no login again.
    other = stack.url("dash.example.com", "/overview?tab=usage")
    page.goto(other)
    assert page.url == other
    assert shown(page) == {"site": "dash", "path": "/overview?tab=usage", "user": "erin"}
    assert [c["domain"] for c in context.cookies() if c["name"] == "__Secure-session"] == [
        ".example.com"
    ]
    context.close()
