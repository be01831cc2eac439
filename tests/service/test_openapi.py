"""``GET /openapi.json``: a valid OpenAPI 3.1 document naming every JSON route, and no other."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock
from coatcheck.service import api
from coatcheck.service.openapi import build_document

from ..ext.auth_app import Browser
from ..ext.helpers import https_client
from .conftest import PASSWORD, add_user
from .test_second_factor import TotpBrowser
from .test_tokens import timed

#: Routes outside /api/ that belong to the JSON API.
JSON_ROUTES = {
    "/auth/verify",
    "/healthz",
    "/readyz",
    "/.well-known/jwks.json",
    "/metrics",
    "/openapi.json",
}
#: Methods Flask answers by itself on every route.
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def routed_operations(app: Flask) -> set[tuple[str, str]]:
    """Return (method, OpenAPI path) of every JSON API route of ``app``."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule in JSON_ROUTES):
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        found |= {(method, path) for method in (rule.methods or set()) - AUTOMATIC_METHODS}
    return found


def described_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


def served_document(app: Flask) -> dict[str, Any]:
    response = https_client(app).get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document: dict[str, Any] = response.json  # type: ignore[assignment]
    return document


@pytest.mark.parametrize("metrics", [False, True])
def test_every_json_route_is_described_and_nothing_else(
    make_service: Callable[..., Flask], metrics: bool
) -> None:
    app = make_service(COATCHECK_METRICS=metrics)
    routed = routed_operations(app)
    described = described_operations(served_document(app))
    assert routed - described == set(), "routes missing from the document"
    assert described - routed == set(), "described operations the app does not have"
    assert (("GET", "/metrics") in described) is metrics
    assert ("POST", "/api/admin/users/{user_id}/roles") in routed  # converters are translated


@pytest.mark.parametrize("metrics", [False, True])
def test_the_document_is_valid_openapi_3_1(metrics: bool) -> None:
    document = build_document(metrics=metrics)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_an_invalid_document_is_refused() -> None:
    # The validator is not a rubber stamp: an undefined path parameter fails.
    document = build_document()
    del document["paths"]["/api/sessions/{handle}"]["delete"]["parameters"]
    with pytest.raises(OpenAPIValidationError, match="handle"):
        validate(document, cls=OpenAPIV31SpecValidator)


def test_every_error_response_has_the_error_shape() -> None:
    document = build_document(metrics=True)
    responses = document["components"]["responses"]
    error = {"$ref": "#/components/schemas/Error"}
    checked = 0
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                schema = response["content"]["application/json"]["schema"]
                assert error in schema.get("allOf", schema.get("anyOf", [])), (status, schema)
                checked += 1
    assert checked > 50
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_the_served_document_follows_the_cookie_settings(
    make_service: Callable[..., Flask],
) -> None:
    schemes = served_document(make_service())["components"]["securitySchemes"]
    assert schemes["sessionCookie"]["name"] == "__Host-session"
    assert schemes["csrfCookie"]["name"] == "__Host-csrf"
    assert schemes["csrfToken"] == {**schemes["csrfToken"], "in": "header", "name": "X-CSRF-Token"}
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    insecure = make_service(COATCHECK_COOKIE_SECURE=False, COATCHECK_COOKIE_NAME="ticket")
    schemes = served_document(insecure)["components"]["securitySchemes"]
    assert (schemes["sessionCookie"]["name"], schemes["csrfCookie"]["name"]) == ("ticket", "csrf")


def test_the_limits_are_the_code_s() -> None:
    document = build_document()
    [offset, limit] = document["paths"]["/api/admin/users"]["get"]["parameters"]
    assert (offset["schema"]["maximum"], limit["schema"]["maximum"]) == (
        api.MAX_OFFSET,
        api.MAX_PAGE,
    )
    register = document["paths"]["/api/register"]["post"]["requestBody"]
    password = register["content"]["application/json"]["schema"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (12, 256)


# -- what the service answers is what the document says -----------------------
#
# The fuzzer (test_schemathesis.py) cannot guess a password or a refresh token,
# so the successful answers behind them are checked here, in process.

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Conformance:
    """Check responses of an app against the document it serves."""

    def __init__(self, app: Flask) -> None:
        self.schema = schemathesis.openapi.from_dict(served_document(app))
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(
        self, method: str, path: str, response: TestResponse, status: int, **params: Any
    ) -> TestResponse:
        assert response.status_code == status, response.get_data(as_text=True)
        case = self.schema[path][method].Case(path_parameters=params or None)
        case.validate_response(response, checks=CHECKS)
        self.seen.add((method, path, status))
        return response


def test_successful_answers_conform(make_service: Callable[..., Flask]) -> None:
    app = make_service(COATCHECK_METRICS=True)
    check = Conformance(app)
    root_id = add_user(app, "root", "admin")
    http = https_client(app, use_cookies=False)
    check("GET", "/api/csrf", http.get("/api/csrf"), 200)

    alice = Browser(app)
    alice.csrf()
    body = {"username": "alice", "password": PASSWORD, "email": "alice@example.com"}
    check("POST", "/api/register", alice.post("/api/register", body), 201)
    alice.csrf()
    phone = Browser(app)
    check("POST", "/api/login", phone.login("alice", PASSWORD, remember=True), 200)
    check("GET", "/api/me", alice.get("/api/me"), 200)

    credentials = {"username": "alice", "password": PASSWORD}
    issued = check("POST", "/api/token", http.post("/api/token", json=credentials), 200).json
    assert issued is not None
    refresh = {"refresh_token": issued["refresh_token"]}
    pair = check("POST", "/api/token/refresh", http.post("/api/token/refresh", json=refresh), 200)
    bearer = {"Authorization": f"Bearer {pair.json['access_token']}"}  # type: ignore[index]
    check("GET", "/api/me", https_client(app).get("/api/me", headers=bearer), 200)
    sessions = check("GET", "/api/sessions", alice.get("/api/sessions"), 200).json
    assert sessions is not None and len(sessions["sessions"]) == 3
    handle = next(s["handle"] for s in sessions["sessions"] if s["kind"] == "token")
    revoked = alice.client.delete(f"/api/sessions/{handle}", headers=alice.headers())
    check("DELETE", "/api/sessions/{handle}", revoked, 204, handle=handle)
    token = {"token": pair.json["access_token"]}  # type: ignore[index]
    check("POST", "/api/token/revoke", http.post("/api/token/revoke", json=token), 204)
    new = {"current_password": PASSWORD, "new_password": "another fine passphrase"}
    check("POST", "/api/password", alice.post("/api/password", new), 204)
    alice.csrf()
    check(
        "DELETE",
        "/api/sessions",
        alice.client.delete("/api/sessions", headers=alice.headers()),
        204,
    )

    root = Browser(app)
    root.login("root", PASSWORD)
    root.get("/sessions/hello")  # a lesson puts data in the session
    check("GET", "/api/inspect", root.get("/api/inspect"), 200)
    check("GET", "/api/admin/users", root.get("/api/admin/users?limit=5"), 200)
    roles = root.post("/api/admin/users/2/roles", {"roles": ["editor"]})
    check("POST", "/api/admin/users/{user_id}/roles", roles, 200, user_id=2)
    check("GET", "/api/admin/sessions", root.get("/api/admin/sessions"), 200)
    audit = root.get(f"/api/admin/audit?user_id={root_id}&limit=3")
    check("GET", "/api/admin/audit", audit, 200)
    ended = root.client.delete("/api/admin/users/2/sessions", headers=root.headers())
    check("DELETE", "/api/admin/users/{user_id}/sessions", ended, 204, user_id=2)
    disabled = root.post("/api/admin/users/2/disable")
    check("POST", "/api/admin/users/{user_id}/disable", disabled, 200, user_id=2)
    enabled = root.post("/api/admin/users/2/enable")
    check("POST", "/api/admin/users/{user_id}/enable", enabled, 200, user_id=2)
    last = root.post(f"/api/admin/users/{root_id}/disable")
    check("POST", "/api/admin/users/{user_id}/disable", last, 409, user_id=root_id)

    check("GET", "/auth/verify", root.get("/auth/verify"), 200)
    page = http.get("/auth/verify", headers={"Accept": "text/html"})
    assert check("GET", "/auth/verify", page, 401).mimetype == "text/html"
    check(
        "GET", "/auth/verify", http.get("/auth/verify", headers={"Accept": "application/json"}), 401
    )
    for path in ("/healthz", "/readyz", "/openapi.json"):
        check("GET", path, http.get(path), 200)
    token = (Path(app.instance_path) / "metrics_token").read_text().strip()
    scrape = {"Authorization": f"Bearer {token}"}
    check("GET", "/metrics", http.get("/metrics", headers=scrape), 200)
    check("GET", "/metrics", http.get("/metrics"), 401)
    check("GET", "/metrics", http.get("/metrics", headers={"Authorization": "Bearer x"}), 403)
    check("GET", "/.well-known/jwks.json", http.get("/.well-known/jwks.json"), 404)
    check("POST", "/api/logout", root.post("/api/logout"), 204)

    successes = {(m, p) for m, p, status in check.seen if status < 300}
    assert successes == described_operations(served_document(app)) - {
        ("GET", "/.well-known/jwks.json")  # 200 with a key pair: below
    } - second_factor_operations(served_document(app)) - mail_operations(
        served_document(app)
    ) - forward_auth_operations(served_document(app))  # below


def second_factor_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Return the operations of SPEC §8 (tag ``second factors``, and the admin's reset)."""
    found = {("DELETE", "/api/admin/users/{user_id}/2fa")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "second factors" in operation["tags"]:
                found.add((method.upper(), path))
    return found


def forward_auth_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Return the operations of SPEC §10 (tag ``forward auth``)."""
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "forward auth" in operation["tags"]
    }


def test_forward_auth_answers_conform(make_service: Callable[..., Flask]) -> None:
    rules = {
        "rules": [
            {"domain": "open.example.com", "policy": "bypass"},
            {"domain": "app.example.com", "subject": "role:admin", "policy": "one_factor"},
            {"domain": "two.example.com", "policy": "two_factor"},
        ]
    }
    app = make_service(
        COATCHECK_TRUSTED_PROXIES="127.0.0.1/32",
        COATCHECK_PUBLIC_URL="https://auth.example.com",
        COATCHECK_ACCESS_CONTROL=rules,
    )
    add_user(app, "root", "admin")
    add_user(app, "bobby")
    check = Conformance(app)
    root, bobby = Browser(app), Browser(app)
    root.login("root", PASSWORD)
    bobby.login("bobby", PASSWORD)
    http = https_client(app, use_cookies=False)

    def ask(client: Any, method: str, path: str, url: str, **headers: str) -> TestResponse:
        host, _, uri = url.partition("/")
        if path.endswith("auth-request"):
            sent = {"X-Original-URL": f"https://{url}", "X-Original-Method": method}
        else:
            sent = {
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": host,
                "X-Forwarded-URI": f"/{uri}",
                "X-Forwarded-Method": method,
            }
        return client.open(path, method=method, headers={**sent, **headers})

    for path in ("/api/authz/auth-request", "/api/authz/forward-auth"):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            check(method, path, ask(root.client, method, path, "app.example.com/x"), 200)
            check(method, path, ask(http, method, path, "open.example.com/"), 200)
            check(method, path, ask(bobby.client, method, path, "app.example.com/x"), 403)
            check(method, path, ask(http, method, path, "nowhere.example.com/"), 403)
        bad = http.get(path, headers={"X-Original-URL": "ftp://x", "X-Forwarded-Proto": "ftp"})
        check("GET", path, bad, 400)
    json = {"Accept": "application/json"}
    check(
        "GET",
        "/api/authz/auth-request",
        ask(http, "GET", "/api/authz/auth-request", "app.example.com/x"),
        401,
    )
    step_up = ask(root.client, "GET", "/api/authz/auth-request", "two.example.com/")
    assert check("GET", "/api/authz/auth-request", step_up, 401).json["error"] == (  # type: ignore[index]
        "second_factor_required"
    )
    page = {"Accept": "text/html"}
    check(
        "GET",
        "/api/authz/forward-auth",
        ask(http, "GET", "/api/authz/forward-auth", "app.example.com/x", **page),
        302,
    )
    check(
        "POST",
        "/api/authz/forward-auth",
        ask(http, "POST", "/api/authz/forward-auth", "app.example.com/x", **page),
        303,
    )
    check(
        "GET",
        "/api/authz/forward-auth",
        ask(http, "GET", "/api/authz/forward-auth", "app.example.com/x", **json),
        401,
    )


def mail_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Return the operations of SPEC §9 (tag ``recovery``, and the admin's mail views)."""
    found = {("GET", "/api/admin/mail"), ("GET", "/api/admin/mail/{mail_id}")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "recovery" in operation["tags"]:
                found.add((method.upper(), path))
    return found


def test_account_mail_answers_conform(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    from coatcheck.service.mailer import build_sender

    app = timed(make_service(COATCHECK_PUBLIC_URL="https://auth.example.com"), clock)
    state = CoatCheck.state(app)
    state.users.clock = clock
    check = Conformance(app)
    add_user(app, "root", "admin")
    browser = Browser(app)
    browser.csrf()
    body = {"username": "alice", "password": PASSWORD, "email": "alice@example.com"}
    check("POST", "/api/register", browser.post("/api/register", body), 201)
    browser.csrf()
    check("GET", "/api/me", browser.get("/api/me"), 200)
    check("POST", "/api/email/verify", browser.post("/api/email/verify"), 202)
    check("POST", "/api/email", browser.post("/api/email", {"email": "a@new.example"}), 202)
    notices = browser.post("/api/account/notices", {"new_device": False})
    check("POST", "/api/account/notices", notices, 200)
    http = https_client(app, use_cookies=False)
    check(
        "POST",
        "/api/password/forgot",
        http.post("/api/password/forgot", json={"login": "alice"}),
        202,
    )
    with app.app_context():
        build_sender(app).send_all()
    links = {
        m.kind: m.text_body.split("https://auth.example.com")[1].split()[0]  # type: ignore[union-attr]
        for m in reversed(state.users.outbox.page())  # the newest of each kind wins
        if m.text_body
    }
    reset = {
        "token": links["password_reset"].rsplit("/", 1)[1],
        "new_password": "a new fine passphrase",
    }
    check("POST", "/api/password/reset", http.post("/api/password/reset", json=reset), 204)
    verify = {"token": links["verify_email"].rsplit("/", 1)[1]}
    check(
        "POST",
        "/api/email/verify/confirm",
        http.post("/api/email/verify/confirm", json=verify),
        204,
    )
    check(
        "POST",
        "/api/email/verify/confirm",
        http.post("/api/email/verify/confirm", json=verify),
        400,
    )
    root = Browser(app)
    root.login("root", PASSWORD)
    mails = check("GET", "/api/admin/mail", root.get("/api/admin/mail?limit=5"), 200).json
    mail_id = mails["mails"][0]["id"]  # type: ignore[index]
    check(
        "GET",
        "/api/admin/mail/{mail_id}",
        root.get(f"/api/admin/mail/{mail_id}"),
        200,
        mail_id=mail_id,
    )
    successes = {(m, p) for m, p, status in check.seen if status < 300}
    assert successes >= mail_operations(served_document(app))


def test_second_factor_answers_conform(
    make_service: Callable[..., Flask], clock: ManualClock
) -> None:
    app = timed(make_service(), clock)
    check = Conformance(app)
    alice_id = add_user(app, "alice")
    add_user(app, "root", "admin")
    alice = TotpBrowser(app)
    alice.login("alice", PASSWORD)
    begun = check("POST", "/api/2fa/totp", alice.post("/api/2fa/totp", {"name": "Phone"}), 200)
    alice.secret, factor_id = begun.json["secret"], begun.json["id"]  # type: ignore[index]
    confirm = alice.post(f"/api/2fa/totp/{factor_id}/confirm", {"code": alice.code(clock)})
    check("POST", "/api/2fa/totp/{factor_id}/confirm", confirm, 200, factor_id=factor_id)
    check("GET", "/api/2fa", alice.get("/api/2fa"), 200)
    renamed = alice.client.patch(
        f"/api/2fa/{factor_id}", json={"name": "Work"}, headers=alice.headers()
    )
    check("PATCH", "/api/2fa/{factor_id}", renamed, 200, factor_id=factor_id)
    codes = check("POST", "/api/2fa/recovery-codes", alice.post("/api/2fa/recovery-codes"), 200)
    check("POST", "/api/reauth", alice.post("/api/reauth", {"password": PASSWORD}), 204)
    key = alice.post("/api/webauthn/register/begin", {"name": "Key", "passkey": False})
    check("POST", "/api/webauthn/register/begin", key, 200)
    clock.advance(30)

    phone = TotpBrowser(app)
    phone.secret = alice.secret
    check("POST", "/api/login", phone.login("alice", PASSWORD), 200)
    options = phone.post("/api/login/second-factor/webauthn")
    check("POST", "/api/login/second-factor/webauthn", options, options.status_code)
    done = phone.second("totp", phone.code(clock))
    check("POST", "/api/login/second-factor", done, 200)
    options = phone.post("/api/reauth/webauthn")
    check("POST", "/api/reauth/webauthn", options, options.status_code)
    recovery = TotpBrowser(app)
    recovery.login("alice", PASSWORD)
    spent = recovery.second("recovery", codes.json["recovery_codes"][0])  # type: ignore[index]
    check("POST", "/api/login/second-factor", spent, 200)
    passkey = TotpBrowser(app)
    passkey.csrf()
    begin = passkey.post("/api/webauthn/login/begin", {})
    check("POST", "/api/webauthn/login/begin", begin, 200)
    refused = passkey.post("/api/webauthn/login/finish", {"credential": {"id": "x"}})
    check("POST", "/api/webauthn/login/finish", refused, refused.status_code)

    removed = alice.client.delete(f"/api/2fa/{factor_id}", headers=alice.headers())
    check("DELETE", "/api/2fa/{factor_id}", removed, 204, factor_id=factor_id)
    root = TotpBrowser(app)
    root.login("root", PASSWORD)
    reset = root.client.delete(f"/api/admin/users/{alice_id}/2fa", headers=root.headers())
    check("DELETE", "/api/admin/users/{user_id}/2fa", reset, 204, user_id=alice_id)
    # Registration and passkey logins finish only with a browser's authenticator:
    # tests/browser/test_webauthn.py runs them.
    successes = {(m, p) for m, p, status in check.seen if status < 300}
    assert successes >= second_factor_operations(served_document(app)) - {
        ("POST", "/api/webauthn/register/finish"),
        ("POST", "/api/webauthn/login/finish"),
        ("POST", "/api/login/second-factor/webauthn"),  # alice has no WebAuthn credential
        ("POST", "/api/reauth/webauthn"),
    }


def test_jwks_conforms(make_service: Callable[..., Flask], tmp_path: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "jwt.pem").write_bytes(key)
    app = make_service(
        COATCHECK_JWT_ALGORITHM="EdDSA", COATCHECK_JWT_PRIVATE_KEY=str(tmp_path / "jwt.pem")
    )
    Conformance(app)(
        "GET", "/.well-known/jwks.json", https_client(app).get("/.well-known/jwks.json"), 200
    )


def test_store_failures_conform(make_service: Callable[..., Flask], private_redis: Any) -> None:
    app = make_service(COATCHECK_STORE_URL=private_redis.url)
    check = Conformance(app)
    add_user(app, "alice")
    browser = Browser(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    private_redis.stop()
    check("GET", "/readyz", https_client(app).get("/readyz"), 503)
    failed = check("GET", "/api/me", browser.get("/api/me"), 503)
    assert failed.json == {**failed.json, "error": "store_unavailable"}  # type: ignore[dict-item]
    check("POST", "/api/logout", browser.post("/api/logout"), 503)
    page = browser.get("/healthz", headers={"Accept": "text/html"})
    assert check("GET", "/healthz", page, 503).mimetype == "text/html"
