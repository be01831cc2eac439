"""Forward auth in process (SPEC §10): the two endpoints, SSO cookies, trusted proxies.

The app is the service on a memory store, its clock the test's. A proxy's
subrequest is a cookieless client sending what the proxy sends: the
``X-Original-*`` or ``X-Forwarded-*`` headers and the browser's ``Cookie``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from werkzeug.test import TestResponse

from coatcheck import CoatCheck
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.passwords import PasswordHasher
from coatcheck.service import create_app

from ..conftest import TEST_SECRET_KEY
from ..ext.helpers import https_client, set_cookies
from .conftest import PASSWORD, add_user
from .test_second_factor import TotpBrowser
from .test_tokens import timed

PORTAL = "https://auth.example.com"
SESSION = "__Secure-session"
RULES: dict[str, Any] = {
    "default_policy": "deny",
    "rules": [
        {"domain": "public.example.com", "policy": "bypass"},
        {"domain": "app.example.com", "resources": ["^/open/"], "policy": "bypass"},
        {"domain": "secure.example.com", "policy": "two_factor"},
        {"domain": "admin.example.com", "subject": ["role:admin"], "policy": "one_factor"},
        {"domain": "admin.example.com", "policy": "deny"},
        {"domain": ["app.example.com", "*.apps.example.com"], "policy": "one_factor"},
        {"domain": "closed.example.com", "policy": "deny"},
    ],
}
CONFIG: dict[str, Any] = {
    "COATCHECK_TRUSTED_PROXIES": "127.0.0.1/32",
    "COATCHECK_PUBLIC_URL": PORTAL,
    "COATCHECK_COOKIE_DOMAIN": "example.com",
    "COATCHECK_ACCESS_CONTROL": RULES,
}
AUTH_REQUEST = "/api/authz/auth-request"
FORWARD_AUTH = "/api/authz/forward-auth"
HTML = "text/html,application/xhtml+xml,*/*;q=0.8"


class PortalClient(FlaskClient):
    """A test client whose requests go to the portal, https://auth.example.com."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        if args and isinstance(args[0], str):
            kwargs.setdefault("base_url", PORTAL)
        return super().open(*args, **kwargs)


class Portal(TotpBrowser):
    """A browser on the portal: it logs in there and keeps the SSO cookie."""

    origin = PORTAL

    def __init__(self, app: Flask) -> None:
        self.client = PortalClient(app, app.response_class)
        self.token = None

    def session(self) -> str:
        cookie = self.client.get_cookie(SESSION, domain="example.com")
        assert cookie is not None, "no SSO session cookie"
        return cookie.value


@pytest.fixture
def make_sso(make_service: Callable[..., Flask], clock: ManualClock) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        return timed(make_service(**{**CONFIG, **config}), clock)

    return factory


@pytest.fixture
def app(make_sso: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_sso()
    yield app
    CoatCheck.state(app).close()


def sso_app(folder: Path, **config: Any) -> Flask:
    """Return a forward-auth app of its own in ``folder`` (for module-scoped fixtures)."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "COATCHECK_INSTANCE": str(folder / "instance"),
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{folder / 'users.db'}",
            **CONFIG,
            **config,
        }
    )
    CoatCheck.state(app).hasher = PasswordHasher.fast_for_tests()
    return timed(app, ManualClock())


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the many tests that only ask questions (bad headers, methods...)."""
    app = sso_app(tmp_path_factory.mktemp("authz"))
    yield app
    CoatCheck.state(app).close()


def logged_in(app: Flask, name: str = "alice", *roles: str, email: str | None = None) -> Portal:
    state = CoatCheck.state(app)
    if state.users.get_by_username(name) is None:
        state.users.create_user(name, state.hasher.hash(PASSWORD), roles=roles, email=email)
    portal = Portal(app)
    answer = portal.login(name, PASSWORD)
    assert answer.status_code == 200, answer.json
    return portal


def proxy(app: Flask, **environ: Any) -> FlaskClient:
    """Return the proxy's client: no cookie jar (it passes the browser's Cookie on)."""
    client = app.test_client(use_cookies=False)
    client.environ_base.update(environ)
    return client


def auth_request(
    app: Flask, url: str, cookie: str | None = None, *, method: str | None = None, **kw: Any
) -> TestResponse:
    headers = {"X-Original-URL": url, **kw.pop("headers", {})}
    if method is not None:
        headers["X-Original-Method"] = method
    if cookie is not None:
        headers["Cookie"] = f"{SESSION}={cookie}"
    return proxy(app, **kw.pop("environ", {})).get(AUTH_REQUEST, headers=headers, **kw)


def forward_auth(
    app: Flask,
    url: str,
    cookie: str | None = None,
    *,
    method: str = "GET",
    accept: str | None = HTML,
    **kw: Any,
) -> TestResponse:
    parts = urlsplit(url)
    headers = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": parts.scheme,
        "X-Forwarded-Host": parts.netloc,
        "X-Forwarded-URI": url[len(f"{parts.scheme}://{parts.netloc}") :] or "/",
        **kw.pop("headers", {}),
    }
    if accept is not None:
        headers["Accept"] = accept
    if cookie is not None:
        headers["Cookie"] = f"{SESSION}={cookie}"
    return proxy(app, **kw.pop("environ", {})).get(FORWARD_AUTH, headers=headers, **kw)


def rd_of(response: TestResponse, page: str = "login") -> str:
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "auth.example.com",
        f"/{page}",
    )
    [rd] = parse_qs(location.query)["rd"]
    return rd


# -- the answers -----------------------------------------------------------------------


def test_an_allowed_user_gets_the_identity_headers(app: Flask) -> None:
    session = logged_in(app, "alice", "staff", "admin", email="alice@example.org").session()
    for answer in (
        auth_request(app, "https://app.example.com/x?y=1", session),
        forward_auth(app, "https://app.example.com/x?y=1", session),
    ):
        assert answer.status_code == 200
        assert answer.headers["Remote-User"] == "alice"
        assert answer.headers["Remote-Groups"] == "admin,staff"
        assert answer.headers["Remote-Email"] == "alice@example.org"
        assert answer.headers["Remote-Name"] == "alice"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in answer.headers
    bypass = auth_request(app, "https://public.example.com/", session)
    assert bypass.status_code == 200 and "Remote-User" not in bypass.headers


def test_identity_headers_of_a_user_without_roles_or_email(app: Flask) -> None:
    session = logged_in(app, "bob").session()
    answer = auth_request(app, "https://app.example.com/", session)
    assert answer.status_code == 200
    assert (answer.headers["Remote-User"], answer.headers["Remote-Groups"]) == ("bob", "")
    assert answer.headers["Remote-Email"] == ""


@pytest.mark.parametrize("email", ["jos\u00e9@example.org", "\u674e@\u4f8b\u5b50.\u4e2d\u56fd"])
def test_a_non_ascii_email_is_sent_as_utf_8_bytes(shared: Flask, email: str) -> None:
    """WSGI writes header values as Latin-1: a value that is not would fail in the server."""
    name = f"user{len(email)}"
    session = logged_in(shared, name, email=email).session()
    answer = auth_request(shared, "https://app.example.com/", session)
    assert answer.status_code == 200
    for value in answer.headers.values():
        value.encode("latin-1")
    assert answer.headers["Remote-Email"].encode("latin-1").decode("utf-8") == email


def test_anonymous_auth_request_is_401_with_the_portal_and_the_url_intact(app: Flask) -> None:
    url = "https://app.example.com/a%20b/c?y=1&z=%2F&w=a+b"
    answer = auth_request(app, url)
    assert answer.status_code == 401
    assert answer.json == {"error": "unauthenticated", "message": "Log in to see this."}
    assert rd_of(answer) == url
    assert answer.headers["Location"].startswith(f"{PORTAL}/login?rd=https%3A%2F%2Fapp.example.com")
    assert answer.headers["Cache-Control"] == "no-store"
    assert auth_request(app, "https://public.example.com/x").status_code == 200
    assert auth_request(app, "https://app.example.com/open/x").status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Accept": HTML}, 302),
        ({"Accept": "*/*", "Sec-Fetch-Mode": "navigate"}, 302),
        ({"Accept": HTML, "X-Forwarded-Method": "POST"}, 303),
        ({"Accept": HTML, "X-Forwarded-Method": "DELETE"}, 303),
        ({"Accept": HTML, "X-Forwarded-Method": "HEAD"}, 302),
        ({"Accept": "application/json"}, 401),
        ({"Accept": HTML, "X-Requested-With": "XMLHttpRequest"}, 401),
        ({"Accept": HTML, "Sec-Fetch-Mode": "cors"}, 401),
        ({}, 401),
    ],
)
def test_anonymous_forward_auth_redirects_browsers_and_answers_401_otherwise(
    shared: Flask, headers: dict[str, str], status: int
) -> None:
    app = shared
    url = "https://app.example.com/x?y=1"
    answer = forward_auth(app, url, accept=None, headers=headers)
    assert answer.status_code == status
    assert rd_of(answer) == url
    if status == 401:
        assert answer.json["error"] == "unauthenticated"  # type: ignore[index]


def test_a_user_not_allowed_gets_403(app: Flask) -> None:
    session = logged_in(app, "alice", "staff").session()
    for url in (
        "https://admin.example.com/",
        "https://closed.example.com/",
        "https://nowhere.example.com/",
    ):
        for answer in (auth_request(app, url, session), forward_auth(app, url, session)):
            assert answer.status_code == 403, url
            assert answer.json["error"] == "forbidden"  # type: ignore[index]
            assert "Location" not in answer.headers and "Remote-User" not in answer.headers
    admin = logged_in(app, "root", "admin").session()
    assert auth_request(app, "https://admin.example.com/", admin).status_code == 200
    # Anonymous: a rule for some users was passed over, so a login may open it.
    assert auth_request(app, "https://admin.example.com/").status_code == 401
    assert auth_request(app, "https://closed.example.com/").status_code == 403


def test_an_aal_1_session_on_a_two_factor_site_is_sent_to_step_up(app: Flask) -> None:
    session = logged_in(app).session()
    url = "https://secure.example.com/doc?id=7"
    answer = auth_request(app, url, session)
    assert answer.status_code == 401
    assert answer.json["error"] == "second_factor_required"  # type: ignore[index]
    assert rd_of(answer, "reauth") == url
    browser = forward_auth(app, url, session)
    assert browser.status_code == 302 and rd_of(browser, "reauth") == url
    assert forward_auth(app, url, session, method="POST").status_code == 303
    assert forward_auth(app, url, session, accept="application/json").status_code == 401


def test_bearer_tokens_are_judged_by_the_token(app: Flask) -> None:
    add_user(app, "bob", "admin")
    tokens = app.test_client().post("/api/token", json={"username": "bob", "password": PASSWORD})
    assert tokens.status_code == 200
    bearer = {"Authorization": f"Bearer {tokens.json['access_token']}"}  # type: ignore[index]
    answer = auth_request(app, "https://admin.example.com/", headers=bearer)
    assert answer.status_code == 200 and answer.headers["Remote-User"] == "bob"
    # With a session cookie of someone else, still the token's user.
    alice = logged_in(app).session()
    both = auth_request(app, "https://admin.example.com/", alice, headers=bearer)
    assert both.status_code == 200 and both.headers["Remote-User"] == "bob"
    # The token was issued after a password alone: aal 1.
    assert auth_request(app, "https://secure.example.com/", headers=bearer).status_code == 401
    forged = {"Authorization": "Bearer not.a.token"}
    assert auth_request(app, "https://app.example.com/", headers=forged).status_code == 401
    assert auth_request(app, "https://app.example.com/", alice, headers=forged).status_code == 401


def test_a_login_waiting_for_its_second_factor_is_anonymous(app: Flask, clock: ManualClock) -> None:
    enrolled = logged_in(app)
    enrolled.enrol(clock)
    clock.advance(30)
    waiting = Portal(app)
    answer = waiting.login("alice", PASSWORD)
    assert answer.json["second_factor_required"] is True  # type: ignore[index]
    pending = waiting.client.get_cookie(SESSION, domain="example.com")
    assert pending is not None
    assert auth_request(app, "https://app.example.com/", pending.value).status_code == 401
    assert forward_auth(app, "https://app.example.com/", pending.value).status_code == 302
    waiting.secret = enrolled.secret
    assert waiting.second("totp", waiting.code(clock)).status_code == 200
    done = auth_request(app, "https://secure.example.com/", waiting.session())
    assert done.status_code == 200 and done.headers["Remote-User"] == "alice"  # aal 2


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_a_proxy_uses_answers_and_none_needs_csrf(shared: Flask, method: str) -> None:
    app = shared
    session = logged_in(app).session()
    client = proxy(app)
    headers = {
        "X-Original-URL": "https://app.example.com/x",
        "X-Original-Method": method,
        "Cookie": f"{SESSION}={session}",
        "Origin": "https://evil.example",
    }
    answer = client.open(AUTH_REQUEST, method=method, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Remote-User"] == "alice"
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-URI": "/x",
        "Cookie": f"{SESSION}={session}",
    }
    assert client.open(FORWARD_AUTH, method=method, headers=forwarded).status_code == 200
    del headers["Cookie"]
    assert client.open(AUTH_REQUEST, method=method, headers=headers).status_code == 401


def test_the_original_method_is_the_subrequest_s_own_when_not_given(app: Flask) -> None:
    rules = {"rules": [{"domain": "app.example.com", "methods": ["POST"], "policy": "bypass"}]}
    client = proxy(_app_with_rules(app, rules))
    url = {"X-Original-URL": "https://app.example.com/"}
    assert client.post(AUTH_REQUEST, headers=url).status_code == 200
    assert client.get(AUTH_REQUEST, headers=url).status_code == 403
    assert client.get(AUTH_REQUEST, headers={**url, "X-Original-Method": "post"}).status_code == 200


def _app_with_rules(app: Flask, rules: dict[str, Any]) -> Flask:
    from coatcheck.auth.access import AccessRules
    from coatcheck.service.authz import RULES_KEY

    app.extensions[RULES_KEY] = AccessRules.parse(rules)
    return app


# -- bad input: 400, never a 500 nor a pass --------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Original-URL": ""},
        {"X-Original-URL": "   "},
        {"X-Original-URL": "/x"},
        {"X-Original-URL": "app.example.com/x"},
        {"X-Original-URL": "//app.example.com/x"},
        {"X-Original-URL": "ftp://app.example.com/x"},
        {"X-Original-URL": "javascript:alert(1)"},
        {"X-Original-URL": "https://user:pw@app.example.com/x"},
        {"X-Original-URL": "https://evil.example\\@app.example.com/"},
        {"X-Original-URL": "https://app.example.com:99999/x"},
        {"X-Original-URL": "https://app.example.com:port/x"},
        {"X-Original-URL": "https://app.example.com/caf\u00e9".encode().decode("latin-1")},
        {"X-Original-URL": "https://app.example.com/a b"},
        {"X-Original-URL": "https://app_x.example.com/"},
        {"X-Original-URL": "https://app.example.com/" + "a" * 9000},
        {"X-Original-URL": "https://app.example.com/", "X-Original-Method": "G ET"},
        {"X-Original-URL": "https://app.example.com/", "X-Original-Method": "GET, POST"},
        {"X-Original-URL": "https://app.example.com/public/#/../../admin/x"},
        {"X-Original-URL": "https://[v1.app.example.com]/"},
        {"X-Original-URL": "https://[app.example.com]/"},
    ],
)
def test_auth_request_refuses_bad_headers_with_400(shared: Flask, headers: dict[str, str]) -> None:
    app = shared
    session = logged_in(app).session()
    answer = proxy(app).get(AUTH_REQUEST, headers={**headers, "Cookie": f"{SESSION}={session}"})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid"  # type: ignore[index]
    assert "Remote-User" not in answer.headers


def test_a_header_sent_twice_is_refused(app: Flask) -> None:
    session = logged_in(app).session()
    from werkzeug.datastructures import Headers

    twice = Headers(
        [
            ("X-Original-URL", "https://public.example.com/"),
            ("X-Original-URL", "https://admin.example.com/"),
            ("Cookie", f"{SESSION}={session}"),
        ]
    )
    answer = proxy(app).get(AUTH_REQUEST, headers=twice)
    assert (answer.status_code, answer.json["error"]) == (400, "invalid")  # type: ignore[index]
    forwarded = Headers(
        [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "public.example.com"),
            ("X-Forwarded-Host", "admin.example.com"),
            ("X-Forwarded-URI", "/"),
        ]
    )
    assert proxy(app).get(FORWARD_AUTH, headers=forwarded).status_code == 400
    methods = Headers(
        [
            ("X-Original-URL", "https://app.example.com/"),
            ("X-Original-Method", "GET"),
            ("X-Original-Method", "POST"),
        ]
    )
    assert proxy(app).get(AUTH_REQUEST, headers=methods).status_code == 400
    # A server may join the two values with a bare comma.
    joined = {"X-Original-URL": "https://public.example.com/,https://admin.example.com/"}
    assert proxy(app).get(AUTH_REQUEST, headers=joined).status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"X-Forwarded-Proto": None},
        {"X-Forwarded-Host": None},
        {"X-Forwarded-URI": None},
        {"X-Forwarded-Proto": "ftp"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Proto": "https, http"},
        {"X-Forwarded-Host": "public.example.com, app.example.com"},
        {"X-Forwarded-Host": "app.example.com,public.example.com"},
        {"X-Forwarded-Host": "user@app.example.com"},
        {"X-Forwarded-Host": "app.example.com:99999"},
        {"X-Forwarded-Host": "app.example.com:x"},
        {"X-Forwarded-Host": "app.example.com/x"},
        {"X-Forwarded-Host": "app.example.com?x"},
        {"X-Forwarded-Host": "app.example.com#x"},
        {"X-Forwarded-Host": "app_x.example.com"},
        {"X-Forwarded-Host": ""},
        {"X-Forwarded-URI": "x"},
        {"X-Forwarded-URI": "https://app.example.com/x"},
        {"X-Forwarded-URI": "/a b"},
        {"X-Forwarded-URI": "/" + "a" * 9000},
        {"X-Forwarded-URI": "/caf\u00e9".encode().decode("latin-1")},
        {"X-Forwarded-Method": "G ET"},
        {"X-Forwarded-URI": "/public/#/../../admin/x"},
        {"X-Forwarded-Host": "[v1.app.example.com]"},
    ],
)
def test_forward_auth_refuses_bad_headers_with_400(
    shared: Flask, change: dict[str, str | None]
) -> None:
    app = shared
    session = logged_in(app).session()
    headers: dict[str, str] = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-URI": "/x",
        "Cookie": f"{SESSION}={session}",
    }
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    answer = proxy(app).get(FORWARD_AUTH, headers=headers)
    assert answer.status_code == 400, answer.headers
    assert answer.json["error"] == "invalid"  # type: ignore[index]


def test_headers_from_an_untrusted_peer_are_ignored(app: Flask) -> None:
    session = logged_in(app).session()
    untrusted = {"REMOTE_ADDR": "10.1.2.3"}
    for answer in (
        auth_request(app, "https://public.example.com/", environ=untrusted),
        auth_request(app, "https://app.example.com/", session, environ=untrusted),
        forward_auth(app, "https://public.example.com/", environ=untrusted),
    ):
        assert answer.status_code == 400
        assert answer.json["error"] == "invalid"  # type: ignore[index]
    trusted = auth_request(app, "https://public.example.com/", environ={"REMOTE_ADDR": "127.0.0.1"})
    assert trusted.status_code == 200


def test_without_trusted_proxies_no_header_is_believed(make_sso: Callable[..., Flask]) -> None:
    app = make_sso(COATCHECK_TRUSTED_PROXIES="")
    assert auth_request(app, "https://public.example.com/").status_code == 400
    assert forward_auth(app, "https://public.example.com/").status_code == 400
    assert proxy(app).get(AUTH_REQUEST).json["error"] == "invalid"  # type: ignore[index]


def test_the_host_keeps_its_port_and_rules_match_the_name(app: Flask) -> None:
    session = logged_in(app).session()
    url = "https://app.example.com:8443/x?y=1"
    assert auth_request(app, url, session).status_code == 200
    assert forward_auth(app, url, session).status_code == 200
    anonymous = forward_auth(app, url)
    assert anonymous.status_code == 302 and rd_of(anonymous) == url
    assert rd_of(auth_request(app, url)) == url
    bypass = forward_auth(app, "http://public.example.com:8080/")
    assert bypass.status_code == 200
    # A URI that looks like a network path is a path of the forwarded host.
    assert forward_auth(app, "https://app.example.com//evil.example/x", session).status_code == 200
    assert rd_of(forward_auth(app, "https://app.example.com//evil.example/x")) == (
        "https://app.example.com//evil.example/x"
    )


def test_ambiguous_paths_are_refused(app: Flask) -> None:
    session = logged_in(app, "root", "admin").session()
    for path in ("/open/../admin", "/open/%2e%2e/admin", "/open/%252e%252e/x", "/open\\..\\x"):
        assert auth_request(app, f"https://app.example.com{path}").status_code == 403, path
        assert auth_request(app, f"https://app.example.com{path}", session).status_code == 403
    assert auth_request(app, "https://app.example.com//open/x").status_code == 200


# -- revocation, and the cost of a decision --------------------------------------------


def test_a_session_logged_out_is_refused_at_the_next_request(app: Flask) -> None:
    portal = logged_in(app)
    session = portal.session()
    assert auth_request(app, "https://app.example.com/", session).status_code == 200
    assert portal.post("/api/logout").status_code in (200, 204)
    assert auth_request(app, "https://app.example.com/", session).status_code == 401


def test_a_session_revoked_by_an_admin_is_refused_at_the_next_request(app: Flask) -> None:
    session = logged_in(app, "alice").session()
    admin = logged_in(app, "root", "admin")
    assert auth_request(app, "https://app.example.com/", session).status_code == 200
    user_id = CoatCheck.state(app).users.get_by_username("alice").id  # type: ignore[union-attr]
    revoked = admin.client.delete(f"/api/admin/users/{user_id}/sessions", headers=admin.headers())
    assert revoked.status_code == 204, revoked.json
    assert auth_request(app, "https://app.example.com/", session).status_code == 401
    assert auth_request(app, "https://app.example.com/", admin.session()).status_code == 200


class Counter:
    """Count the SQL statements of an engine and the writes of a store."""

    WRITES = ("save", "add", "touch", "delete", "delete_by_user")

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        self.writes: list[str] = []
        state = CoatCheck.state(app)
        engine = state.users.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        self._engine = engine
        for name in self.WRITES:
            original = getattr(state.store, name)
            monkeypatch.setattr(state.store, name, self._counting(name, original))

    def _statement(self, *args: Any) -> None:
        self.sql.append(str(args[2]))

    def _counting(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.writes.append(name)
            return original(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.sql.clear()
        self.writes.clear()

    def stop(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)


def test_a_decision_makes_no_sql_query_and_no_store_write(
    app: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = logged_in(app, "alice", "staff", email="alice@example.org").session()
    add_user(app, "bob", "admin")
    tokens = app.test_client().post("/api/token", json={"username": "bob", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {tokens.json['access_token']}"}  # type: ignore[index]
    counter = Counter(app, monkeypatch)
    try:
        auth_request(app, "https://app.example.com/", session)  # warm-up
        counter.reset()
        for _ in range(5):
            assert auth_request(app, "https://app.example.com/x", session).status_code == 200
            assert forward_auth(app, "https://app.example.com/x", session).status_code == 200
            assert auth_request(app, "https://secure.example.com/", session).status_code == 401
            assert auth_request(app, "https://admin.example.com/", session).status_code == 403
            assert (
                auth_request(app, "https://admin.example.com/", headers=bearer).status_code == 200
            )
            assert auth_request(app, "https://public.example.com/").status_code == 200
            assert auth_request(app, "https://app.example.com/").status_code == 401
            clock.advance(1)
        assert counter.sql == []
        assert counter.writes == []
        # The once-a-minute last-seen touch is the one write a session makes.
        clock.advance(120)
        for _ in range(3):
            assert auth_request(app, "https://app.example.com/", session).status_code == 200
        assert counter.writes == ["touch"]
        assert counter.sql == []
        logged_in(app, "carol")  # the counter sees what a login does
        assert counter.sql and counter.writes
    finally:
        counter.stop()


def test_auth_verify_still_works(app: Flask) -> None:
    session = logged_in(app, "alice", "staff").session()
    answer = proxy(app).get("/auth/verify", headers={"Cookie": f"{SESSION}={session}"})
    assert answer.status_code == 200
    assert (answer.headers["X-Auth-User"], answer.headers["X-Auth-Roles"]) == ("alice", "staff")
    assert proxy(app).get("/auth/verify").status_code == 401


# -- CSRF origins of the protected sites -----------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://x.apps.example.com", True),
        ("https://app.example.com:8443", True),
        ("https://auth.example.com", True),
        ("https://public.example.com", False),  # named by a bypass rule only
        ("https://other.example.com", False),  # under the domain, named by no rule
        ("https://evil.com", False),
        ("https://app.example.com.evil.net", False),
        ("http://app.example.com", False),  # the cookies are secure
        ("null", False),
    ],
)
def test_logout_accepts_the_origin_of_a_protected_site_only(
    shared: Flask, origin: str, allowed: bool
) -> None:
    app = shared
    portal = logged_in(app)
    session = portal.session()
    answer = portal.client.post(
        "/logout",
        data={"csrf_token": portal.token},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-site"},
    )
    still = auth_request(app, "https://app.example.com/", session).status_code
    if allowed:
        assert answer.status_code == 303, answer.get_data(as_text=True)
        assert still == 401
    else:
        assert answer.status_code == 403
        assert still == 200


# -- the SSO cookie --------------------------------------------------------------------


def test_the_session_cookie_is_secure_with_the_domain_and_deleted_alike(app: Flask) -> None:
    portal = Portal(app)
    add_user(app, "alice")
    portal.csrf()
    login = portal.post("/api/login", {"username": "alice", "password": PASSWORD, "remember": True})
    assert login.status_code == 200
    cookies = {c.name: c for c in set_cookies(login)}
    session = cookies[SESSION]
    assert session.attributes["domain"] == "example.com"
    assert {"secure", "httponly", "path"} <= set(session.attributes)
    assert session.attributes["path"] == "/"
    remember = cookies["__Host-remember"]
    assert "domain" not in remember.attributes and "secure" in remember.attributes
    portal.token = login.json["csrf_token"]  # type: ignore[index]
    logout = portal.post("/api/logout")
    deleted, host_only = [c for c in set_cookies(logout) if c.name == SESSION]
    assert deleted.value == ""
    assert deleted.attributes["domain"] == "example.com"
    assert deleted.attributes["path"] == "/"
    assert "secure" in deleted.attributes and "httponly" in deleted.attributes
    assert deleted.attributes.get("samesite") == session.attributes.get("samesite")
    # A host-only cookie of the same name, which would make every request carry two
    # session cookies (no session), is deleted too.
    assert host_only.value == "" and "domain" not in host_only.attributes


def test_a_stale_host_only_cookie_beside_the_domain_one_is_cleared(app: Flask) -> None:
    portal = Portal(app)
    add_user(app, "alice")
    portal.csrf()
    login = portal.post("/api/login", {"username": "alice", "password": PASSWORD})
    session = {c.name: c for c in set_cookies(login)}[SESSION].value
    twice = f"{SESSION}=stale; {SESSION}={session}"
    answer = https_client(app, use_cookies=False).get("/api/me", headers={"Cookie": twice})
    assert answer.status_code == 401
    cleared = [c for c in set_cookies(answer) if c.name == SESSION]
    assert {c.attributes.get("domain") for c in cleared} == {"example.com", None}


def test_the_csrf_cookie_stays_host_only(app: Flask) -> None:
    answer = PortalClient(app, app.response_class).get("/api/csrf")
    [csrf_cookie] = [c for c in set_cookies(answer) if c.name.endswith("csrf")]
    assert csrf_cookie.name == "__Host-csrf" and "domain" not in csrf_cookie.attributes


def test_an_insecure_cookie_is_plain_session_with_the_domain(
    make_sso: Callable[..., Flask],
) -> None:
    app = make_sso(COATCHECK_COOKIE_SECURE=False, COATCHECK_PUBLIC_URL="http://auth.example.com")
    add_user(app, "alice")
    client = app.test_client()
    base = "http://auth.example.com"
    token = client.get("/api/csrf", base_url=base).json["csrf_token"]  # type: ignore[index]
    login = client.post(
        "/api/login",
        json={"username": "alice", "password": PASSWORD},
        base_url=base,
        headers={"Origin": base, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token},
    )
    assert login.status_code == 200
    [session] = [c for c in set_cookies(login) if c.name == "session"]
    assert session.attributes["domain"] == "example.com" and "secure" not in session.attributes


@pytest.mark.parametrize(
    ("domain", "stored"),
    [
        (".example.com", "example.com"),
        ("Example.COM", "example.com"),
        (" example.com ", "example.com"),
    ],
)
def test_the_cookie_domain_is_normalised(
    make_sso: Callable[..., Flask], domain: str, stored: str
) -> None:
    app = make_sso(COATCHECK_COOKIE_DOMAIN=domain)
    assert CoatCheck.state(app).settings.cookie_domain == stored


@pytest.mark.parametrize(
    "config",
    [
        {"COATCHECK_COOKIE_NAME": "__Host-x"},
        {"COATCHECK_PUBLIC_URL": "https://auth.example.org"},
        {"COATCHECK_PUBLIC_URL": "https://example.com.evil.net"},
        {"COATCHECK_PUBLIC_URL": "https://notexample.com"},
        {"COATCHECK_COOKIE_DOMAIN": "localhost", "COATCHECK_PUBLIC_URL": "https://localhost"},
        {"COATCHECK_COOKIE_DOMAIN": "1.2.3.4", "COATCHECK_PUBLIC_URL": "https://1.2.3.4"},
        {"COATCHECK_COOKIE_DOMAIN": "exa mple.com", "COATCHECK_PUBLIC_URL": ""},
        {"COATCHECK_COOKIE_DOMAIN": "https://example.com"},
        {"COATCHECK_COOKIE_DOMAIN": "example.com:443"},
        {"COATCHECK_COOKIE_DOMAIN": "*.example.com"},
    ],
)
def test_a_bad_cookie_domain_is_refused_at_start(
    make_sso: Callable[..., Flask], config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        make_sso(**config)


def test_bad_access_rules_are_refused_at_start(make_sso: Callable[..., Flask]) -> None:
    bad = {"rules": [{"domain": "app.example.com", "policy": "one_factor", "resources": ["(a+)+"]}]}
    with pytest.raises(ConfigurationError, match="rule 1"):
        make_sso(COATCHECK_ACCESS_CONTROL=bad)


# -- COATCHECK_TRUSTED_PROXIES ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hops", "networks"),
    [
        ("1", 1, ()),
        (1, 1, ()),
        ("127.0.0.1/32, 10.0.0.0/8", 1, ("127.0.0.1/32", "10.0.0.0/8")),
        ("2, 10.0.0.0/8", 2, ("10.0.0.0/8",)),
        (["127.0.0.1/32", "::1/128"], 1, ("127.0.0.1/32", "::1/128")),
    ],
)
def test_trusted_proxies_forms(
    make_sso: Callable[..., Flask], value: Any, hops: int, networks: tuple[str, ...]
) -> None:
    settings = CoatCheck.state(make_sso(COATCHECK_TRUSTED_PROXIES=value)).settings
    assert settings.proxy_hops == hops
    assert tuple(str(n) for n in settings.proxy_networks) == networks


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.1/8", "proxy.local", "1, 2", "-1"])
def test_a_bad_trusted_proxies_value_is_refused(make_sso: Callable[..., Flask], value: str) -> None:
    with pytest.raises(ConfigurationError):
        make_sso(COATCHECK_TRUSTED_PROXIES=value)


def test_x_forwarded_for_is_believed_only_from_a_trusted_peer(
    make_sso: Callable[..., Flask],
) -> None:
    rules = {
        "rules": [{"domain": "app.example.com", "networks": ["192.0.2.0/24"], "policy": "bypass"}]
    }
    app = make_sso(COATCHECK_ACCESS_CONTROL=rules, COATCHECK_TRUSTED_PROXIES="127.0.0.1/32")
    seen: list[str | None] = []

    @app.get("/peer")
    def peer() -> str:
        from flask import request

        seen.append(request.remote_addr)
        return ""

    forwarded = {"X-Forwarded-For": "192.0.2.9"}
    proxy(app).get("/peer", headers=forwarded)
    proxy(app, REMOTE_ADDR="10.1.2.3").get("/peer", headers=forwarded)
    assert seen == ["192.0.2.9", "10.1.2.3"]
    from_proxy = auth_request(app, "https://app.example.com/", headers=forwarded)
    assert from_proxy.status_code == 200  # the client, 192.0.2.9, is in the rule's network
    assert auth_request(app, "https://app.example.com/").status_code == 403
    lying = auth_request(
        app, "https://app.example.com/", headers=forwarded, environ={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert lying.status_code == 400


def test_a_short_x_forwarded_for_proves_no_client_address(make_sso: Callable[..., Flask]) -> None:
    # Two proxies trusted, one address given: ProxyFix would keep the nearer proxy's own
    # address as the client's, and a proxy in the office network would open the rule.
    rules = {
        "rules": [{"domain": "app.example.com", "networks": ["127.0.0.0/8"], "policy": "bypass"}]
    }
    app = make_sso(COATCHECK_ACCESS_CONTROL=rules, COATCHECK_TRUSTED_PROXIES="2, 127.0.0.1/32")
    url = "https://app.example.com/"
    assert auth_request(app, url).status_code == 403
    one = {"X-Forwarded-For": "203.0.113.9"}
    assert auth_request(app, url, headers=one).status_code == 403
    both = {"X-Forwarded-For": "127.0.0.5, 127.0.0.1"}
    assert auth_request(app, url, headers=both).status_code == 200
    outside = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
    assert auth_request(app, url, headers=outside).status_code == 403
