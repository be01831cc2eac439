"""Passkeys and security keys in a real Chromium (SPEC §8), with a virtual authenticator.

Chromium's DevTools protocol gives each page a virtual CTAP2 authenticator
(``WebAuthn.addVirtualAuthenticator``), so ``navigator.credentials`` really
runs: the service's own ``webauthn.js`` on a page with the markup contract
(``data-webauthn``, ``data-passkey``), against the JSON API of an app served
on ``http://localhost`` (an IP address is no valid RP ID).

The pages are the service's own: ``/login`` (passkey button, and the second
step's security-key button), ``/account/security`` (registration form) and
``/reauth`` (step-up button), each served with the CSP that lets it run the
script (:data:`~coatcheck.service.http.SCRIPT_PAGE_CSP`).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from coatcheck import CoatCheck
from coatcheck.core.passwords import PasswordHasher
from coatcheck.service import create_app
from coatcheck.service.http import SCRIPT_PAGE_CSP
from coatcheck.users import models as events

from ..conftest import TEST_SECRET_KEY, free_port
from .test_browser import chromium, shot  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
WAIT = 15_000  # ms: the longest any step may take


@dataclass
class Served:
    app: Flask
    url: str

    def events(self, name: str) -> list[Any]:
        return [
            e for e in CoatCheck.state(self.app).users.list_events(limit=200) if e.event == name
        ]


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The app on a port of its own; more settings by indirect parametrisation."""
    app = create_app(
        {
            "SECRET_KEY": TEST_SECRET_KEY,
            "COATCHECK_INSTANCE": str(tmp_path / "instance"),
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            **getattr(request, "param", {}),
        }
    )
    CoatCheck.state(app).hasher = PasswordHasher.fast_for_tests()
    port = free_port()
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(app, f"http://localhost:{port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)


class Tab:
    """One page of the served app, with a virtual authenticator of its own."""

    def __init__(self, browser: Any, served: Served) -> None:
        self.served = served
        self.context = browser.new_context()
        self.context.set_default_timeout(WAIT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT)
        self.page.set_default_navigation_timeout(WAIT)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        added = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        self.authenticator = added["authenticatorId"]
        self.page.goto(f"{served.url}/login")

    def api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Call the JSON API from the page (same origin, cookies, CSRF token)."""
        result: dict[str, Any] = self.page.evaluate(
            """async ([method, path, body]) => {
                let token = "";
                if (method !== "GET") {
                    const got = await fetch("/api/csrf", {credentials: "same-origin"});
                    token = (await got.json()).csrf_token;
                }
                const response = await fetch(path, {
                    method, credentials: "same-origin",
                    headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
                    body: body === null ? undefined : JSON.stringify(body),
                });
                const text = await response.text();
                return {status: response.status, body: text ? JSON.parse(text) : null};
            }""",
            [method, path, body],
        )
        return result

    def open(self, path: str) -> None:
        """Open one of the service's pages with WebAuthn controls; check it may run the script."""
        response = self.page.goto(f"{self.served.url}{path}")
        assert response is not None and response.status == 200, path
        assert response.headers["content-security-policy"] == SCRIPT_PAGE_CSP, path
        self.page.wait_for_load_state("load")

    def click_and_wait(self, selector: str, url: str) -> None:
        self.page.click(selector)
        self.page.wait_for_url(f"{self.served.url}{url}", timeout=WAIT)

    def credentials(self) -> list[dict[str, Any]]:
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return list(found["credentials"])

    def register_user(self, username: str) -> None:
        answer = self.api("POST", "/api/register", {"username": username, "password": PASSWORD})
        assert answer["status"] == 201, answer

    def add_credential(self, name: str, *, passkey: bool) -> None:
        self.open("/account/security")
        form = "form[data-webauthn=register]"
        self.page.fill(f"{form} input[name=name]", name)
        self.page.set_checked(f"{form} input[name=passkey]", passkey)
        self.page.click("button[data-passkey=register]")
        # The first factor brings recovery codes, shown once on their page.
        self.page.wait_for_url(f"{self.served.url}/account/security/recovery-codes**")
        self.page.wait_for_load_state("load")

    def me(self) -> dict[str, Any]:
        return self.api("GET", "/api/me")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(chromium: Any, served: Served) -> Iterator[Tab]:  # noqa: F811 (the fixture)
    opened = Tab(chromium, served)
    yield opened
    opened.close()


def test_passkey_registered_then_logs_in_alone(tab: Tab, served: Served) -> None:
    tab.register_user("alice")
    tab.add_credential("Laptop", passkey=True)
    assert tab.page.locator("ol.codes li").count() == 10  # the first factor's recovery codes
    tab.click_and_wait("text=I have saved them", "/account/security")
    assert "Passkey" in tab.page.inner_text("ul.factors")
    factors = tab.api("GET", "/api/2fa")["body"]["factors"]
    assert [(f["name"], f["type"], f["passkey"]) for f in factors] == [("Laptop", "webauthn", True)]
    [credential] = tab.credentials()
    assert credential["isResidentCredential"] is True, credential.keys()
    assert served.events(events.FACTOR_ADDED)

    assert tab.api("POST", "/api/logout")["status"] == 204
    assert tab.me()["status"] == 401
    tab.open("/login")
    tab.click_and_wait("button[data-passkey=login]", "/account")
    me = tab.me()
    assert me["status"] == 200 and me["body"]["user"]["username"] == "alice"
    assert me["body"]["session"]["aal"] == 2 and me["body"]["session"]["amr"] == ["passkey"]
    assert served.events(events.PASSKEY_LOGIN)


def test_security_key_completes_a_password_login(tab: Tab, served: Served) -> None:
    tab.register_user("bob")
    tab.add_credential("YubiKey", passkey=False)
    [factor] = tab.api("GET", "/api/2fa")["body"]["factors"]
    assert factor["passkey"] is False
    tab.api("POST", "/api/logout")

    tab.open("/login")  # the password form of the page, then its second step
    tab.page.fill("input[name=username]", "bob")
    tab.page.fill("input[name=password]", PASSWORD)
    tab.click_and_wait("form.stack button[type=submit]", "/login")
    assert tab.me()["body"]["error"] == "second_factor_required"
    assert tab.page.locator("button[data-webauthn=second-factor]").count() == 1
    assert tab.page.locator("input[name=code]").count() == 1  # a recovery code would do too
    shot(tab.page, "webauthn-second-step")
    tab.click_and_wait("button[data-webauthn=second-factor]", "/account")
    session = tab.me()["body"]["session"]
    assert session["aal"] == 2 and session["amr"] == ["pwd", "webauthn"]

    # Step-up with the same key renews authenticated_at.
    tab.open("/reauth?next=/account/sessions")
    shot(tab.page, "webauthn-reauth")
    tab.click_and_wait("button[data-webauthn=reauth]", "/account/sessions")
    assert served.events(events.STEP_UP)


@pytest.mark.parametrize("served", [{"COATCHECK_REQUIRE_SECOND_FACTOR": "all"}], indirect=True)
def test_enrolment_with_a_passkey_on_the_security_page_completes_the_login(tab: Tab) -> None:
    answer = tab.api("POST", "/api/register", {"username": "frank", "password": PASSWORD})
    assert answer["status"] == 201 and answer["body"]["second_factor_enrolment_required"]
    tab.open("/account")  # a protected page sends the pending login to enrol
    assert tab.page.url == f"{tab.served.url}/account/security"
    assert "One more step to log in." in tab.page.inner_text("main")
    tab.open("/account/security")
    tab.page.fill("form[data-webauthn=register] input[name=name]", "Laptop")
    tab.page.set_checked("form[data-webauthn=register] input[name=passkey]", True)
    tab.page.click("button[data-passkey=register]")
    tab.page.wait_for_url(f"{tab.served.url}/account/security/recovery-codes?next=/account")
    assert tab.page.locator("ol.codes li").count() == 10
    tab.click_and_wait("text=I have saved them", "/account")
    session = tab.me()["body"]["session"]
    assert session["aal"] == 2 and session["amr"] == ["pwd", "webauthn"]


def test_second_factor_credential_refused_for_passwordless_login(tab: Tab) -> None:
    tab.register_user("carol")
    tab.add_credential("YubiKey", passkey=False)
    [credential] = tab.credentials()
    tab.api("POST", "/api/logout")
    # The login challenge, with the second-factor credential named explicitly, so
    # that the authenticator signs with it: the server must still refuse it.
    answer = tab.page.evaluate(
        """async (credentialId) => {
            const csrf = (await (await fetch("/api/csrf")).json()).csrf_token;
            const post = (path, body) => fetch(path, {method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                body: JSON.stringify(body)});
            const options = await (await post("/api/webauthn/login/begin", {})).json();
            options.allowCredentials = [{type: "public-key", id: credentialId}];
            const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
            const made = await navigator.credentials.get({publicKey});
            const finish = await post("/api/webauthn/login/finish", {credential: made.toJSON()});
            return {status: finish.status, body: await finish.json()};
        }""",
        _b64url(credential["credentialId"]),
    )
    assert answer["status"] == 401 and answer["body"]["error"] == "invalid_code"
    assert tab.me()["status"] == 401


def test_clone_counter_refused_and_audited(tab: Tab, served: Served) -> None:
    tab.register_user("dave")
    tab.add_credential("Laptop", passkey=True)
    tab.api("POST", "/api/logout")
    tab.open("/login")
    tab.click_and_wait("button[data-passkey=login]", "/account")
    tab.api("POST", "/api/logout")
    [credential] = tab.credentials()
    assert credential["signCount"] >= 1
    # The same credential, as a copy whose counter is behind the original's.
    tab.cdp.send(
        "WebAuthn.removeCredential",
        {"authenticatorId": tab.authenticator, "credentialId": credential["credentialId"]},
    )
    tab.cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": tab.authenticator, "credential": {**credential, "signCount": 0}},
    )
    tab.open("/login")
    tab.page.click("button[data-passkey=login]")
    tab.page.wait_for_selector("[data-webauthn-error]:not(:empty)", timeout=WAIT)
    assert "wrong" in tab.page.inner_text("[data-webauthn-error]")
    assert tab.me()["status"] == 401
    [cloned] = served.events(events.CREDENTIAL_CLONED)
    assert cloned.detail is not None and cloned.detail["sent"] <= cloned.detail["stored"]


def test_foreign_origin_response_refused(tab: Tab, served: Served) -> None:
    tab.register_user("erin")
    tab.add_credential("Laptop", passkey=True)
    tab.api("POST", "/api/logout")

    def to_another_origin(route: Any) -> None:
        body = json.loads(route.request.post_data or "{}")
        response = body["credential"]["response"]
        client_data = json.loads(_unb64(response["clientDataJSON"]))
        client_data["origin"] = "https://evil.example"
        response["clientDataJSON"] = _b64url_bytes(json.dumps(client_data).encode())
        route.continue_(post_data=json.dumps(body))

    tab.page.route(f"{served.url}/api/webauthn/login/finish", to_another_origin)
    tab.open("/login")
    tab.page.click("button[data-passkey=login]")
    tab.page.wait_for_selector("[data-webauthn-error]:not(:empty)", timeout=WAIT)
    assert tab.page.url.endswith("/login")
    assert tab.me()["status"] == 401
    assert served.events(events.SECOND_FACTOR_FAILED)


def _b64url(standard: str) -> str:
    """Return CDP's base64 (standard alphabet) as base64url without padding."""
    return standard.replace("+", "-").replace("/", "_").rstrip("=")


def _b64url_bytes(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
