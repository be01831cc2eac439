"""What every proxy configuration in the docs must do, written once for all of them.

Each function takes a running :class:`~.harness.Stack` (nginx or Caddy in
front of coatcheck and two applications) and checks one property end to end,
through real TLS, with the host names a browser would send.
"""

from __future__ import annotations

import http.client
from urllib.parse import quote

from .harness import IDENTITY, PASSWORD, Browser, Reply, Seen, Stack, hidden_fields

#: A client's Remote-* headers: twice, in lower case, with underscores.
FORGED = [
    ("Remote-User", "mallory"),
    ("Remote-User", "alice"),
    ("remote-groups", "admin"),
    ("Remote-Groups", "admin,superuser"),
    ("Remote-Email", "mallory@example.com"),
    ("Remote-Name", "Mallory"),
    ("Remote_User", "alice"),
    ("REMOTE_GROUPS", "admin"),
    ("Remote_Email", "mallory@example.com"),
    ("Remote_Name", "Mallory"),
]


def login(stack: Stack, username: str) -> Browser:
    """Return a browser logged in at the portal as ``username`` (with the second
    factor for a user who has an authenticator app)."""
    browser = stack.browser()
    reply = browser.api("POST", "/api/login", {"username": username, "password": PASSWORD})
    assert reply.status == 200, reply.text
    authenticator = stack.authenticators.get(username)
    if authenticator is not None:
        second = browser.api(
            "POST", "/api/login/second-factor", {"method": "totp", "code": authenticator.code()}
        )
        assert second.status == 200, second.text
    assert browser.cookie("__Secure-session") is not None
    return browser


def coatcheck_answer(stack: Stack, browser: Browser, url: str) -> dict[str, str]:
    """Return the identity headers coatcheck itself answers for ``browser`` on ``url``."""
    host = url.split("/")[2].split(":")[0]
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies if c.sent_to(host))
    conn = http.client.HTTPConnection("127.0.0.1", stack.served.port, timeout=20)
    try:
        conn.request(
            "GET",
            "/api/authz/auth-request",
            headers={"X-Original-Method": "GET", "X-Original-URL": url, "Cookie": cookie},
        )
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200, response.status
    return {name: response.headers.get(name, "") for name in IDENTITY}


def assert_identity(seen: Seen, expected: dict[str, str]) -> None:
    """Check the application saw coatcheck's identity headers and nothing else by those
    names: each once, or (an empty value) not at all or empty."""
    found = seen.identity()
    assert set(found) <= set(IDENTITY), found
    for name in IDENTITY:
        value = expected.get(name, "")
        if value:
            assert found.get(name) == [value], (name, found)
        else:
            assert found.get(name, [""]) == [""], (name, found)


def redirect_status(stack: Stack, method: str = "GET") -> int:
    """Return the status the proxy sends a browser to the portal with."""
    if stack.kind == "nginx":
        return 302  # error_page 401 =302
    return 303 if method == "POST" else 302


def assert_sent_to(stack: Stack, reply: Reply, page: str, original: str, status: int) -> None:
    assert reply.status == status, (reply.status, reply.text[:500])
    assert reply.location == stack.portal(f"/{page}?rd={quote(original, safe='')}")


# -- the scenarios -------------------------------------------------------------------------


def anonymous_is_sent_to_the_portal(stack: Stack) -> None:
    original = stack.url("app.example.com", "/some/page?x=1&y=two")
    browser = stack.browser()
    reply = browser.request("GET", original)
    assert_sent_to(stack, reply, "login", original, redirect_status(stack))
    posted = browser.request("POST", original, form={"note": "hello"})
    assert_sent_to(stack, posted, "login", original, redirect_status(stack, "POST"))
    assert stack.apps["app"].requests_to("/some/page?x=1&y=two") == []


def a_script_is_told_401(stack: Stack) -> None:
    """Caddy passes forward-auth's answer on: a fetch() gets 401, not a page."""
    original = stack.url("app.example.com", "/api/data?page=2")
    reply = stack.browser().request("GET", original, accept="application/json")
    assert reply.status == 401, reply.status
    assert reply.json["error"] == "unauthenticated"
    assert stack.apps["app"].requests_to("/api/data?page=2") == []


def login_returns_to_the_original_url(stack: Stack) -> None:
    original = stack.url("app.example.com", "/report?month=11&year=2026&q=a%20b")
    browser = stack.browser()
    sent = browser.request("GET", original)
    page = browser.request("GET", sent.location)
    assert page.status == 200
    assert "data-asked-by><strong>app.example.com</strong> asked you to log in" in page.text
    logged_in = browser.login_form(sent.location, "bobby")
    assert (logged_in.status, logged_in.location) == (303, original)
    session = browser.cookie("__Secure-session")
    assert session is not None and session.domain == "example.com" and not session.host_only
    reply = browser.request("GET", logged_in.location)
    assert reply.status == 200, reply.text
    assert reply.json == {
        "site": "app",
        "path": "/report?month=11&year=2026&q=a%20b",
        "user": "bobby",
    }


def a_bypass_path_is_open_to_anyone(stack: Stack) -> None:
    reply = stack.browser().request(
        "GET", stack.url("app.example.com", "/public/notice?lang=en"), headers=FORGED
    )
    assert reply.status == 200, reply.text
    assert_identity(stack.apps["app"].one("/public/notice?lang=en"), {})


def one_login_opens_every_one_factor_site(stack: Stack) -> None:
    browser = login(stack, "bobby")
    reply = browser.request("GET", stack.url("app.example.com", "/one-factor/page"))
    assert reply.status == 200 and reply.json["user"] == "bobby"
    seen = stack.apps["app"].one("/one-factor/page")
    assert_identity(seen, {"remote-user": "bobby", "remote-name": "bobby"})


def two_factor_needs_a_second_factor(stack: Stack) -> None:
    original = stack.url("dash.example.com", "/graphs?range=7d")
    password_only = login(stack, "bobby")
    reply = password_only.request("GET", original)
    assert_sent_to(stack, reply, "reauth", original, redirect_status(stack))
    assert stack.apps["dash"].requests_to("/graphs?range=7d") == []
    both = login(stack, "carol")
    reply = both.request("GET", original)
    assert reply.status == 200, reply.text
    assert reply.json == {"site": "dash", "path": "/graphs?range=7d", "user": "carol"}
    assert_identity(
        stack.apps["dash"].one("/graphs?range=7d"), {"remote-user": "carol", "remote-name": "carol"}
    )


def a_role_restricted_area(stack: Stack) -> None:
    bobby = login(stack, "bobby")
    refused = bobby.request(
        "GET", stack.url("app.example.com", "/admin/users"), headers=[("Remote-Groups", "admin")]
    )
    assert refused.status == 403
    assert stack.apps["app"].requests_to("/admin/users") == []
    alice = login(stack, "alice")
    reply = alice.request("GET", stack.url("app.example.com", "/admin/users"))
    assert reply.status == 200 and reply.json["user"] == "alice"


def the_app_sees_exactly_coatchecks_identity(stack: Stack) -> None:
    alice = login(stack, "alice")
    url = stack.url("app.example.com", "/admin/whoami")
    answer = coatcheck_answer(stack, alice, url)
    assert answer == {
        "remote-user": "alice",
        "remote-groups": "admin",
        "remote-email": "alice@example.com",
        "remote-name": "alice",
    }
    reply = alice.request("GET", url, headers=FORGED)
    assert reply.status == 200, reply.text
    assert_identity(stack.apps["app"].one("/admin/whoami"), answer)
    bobby = login(stack, "bobby")
    url = stack.url("app.example.com", "/forged/bobby")
    reply = bobby.request("GET", url, headers=FORGED)
    assert reply.status == 200, reply.text
    assert_identity(stack.apps["app"].one("/forged/bobby"), coatcheck_answer(stack, bobby, url))


def logout_ends_access_everywhere(stack: Stack) -> None:
    dave = login(stack, "dave")
    for host in ("app", "dash"):
        assert dave.request("GET", stack.url(f"{host}.example.com", "/before")).status == 200
    stolen = list(dave.cookies)  # what a copy of the cookie jar would replay
    account = dave.request("GET", stack.portal("/account"))
    assert account.status == 200
    fields = hidden_fields(account.text, "/logout")
    out = dave.request("POST", stack.portal("/logout"), form=fields)
    assert out.status == 303, out.text
    assert dave.cookie("__Secure-session") is None
    for jar in ([], stolen):
        dave.cookies = list(jar)
        for host in ("app", "dash"):
            original = stack.url(f"{host}.example.com", "/after")
            reply = dave.request("GET", original)
            assert_sent_to(stack, reply, "login", original, redirect_status(stack))
    assert stack.apps["app"].requests_to("/after") == []
    assert stack.apps["dash"].requests_to("/after") == []


def a_revoked_session_is_refused_at_once(stack: Stack) -> None:
    laptop, phone = login(stack, "alice"), login(stack, "alice")
    url = stack.url("app.example.com", "/revoked/page")
    assert laptop.request("GET", url).status == 200
    listed = laptop.api("GET", "/api/sessions")
    [handle] = [s["handle"] for s in listed.json["sessions"] if s["current"]]
    assert phone.api("DELETE", f"/api/sessions/{handle}").status == 204
    reply = laptop.request("GET", url)
    assert_sent_to(stack, reply, "login", url, redirect_status(stack))
    assert len(stack.apps["app"].requests_to("/revoked/page")) == 1
    assert phone.request("GET", url).status == 200


def forged_original_url_headers_change_nothing(stack: Stack) -> None:
    bypass = stack.url("app.example.com", "/public/open")
    forged = [
        ("X-Original-URL", bypass),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Host", "app.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-URI", "/public/open"),
        ("X-Forwarded-Method", "GET"),
    ]
    anonymous = stack.browser()
    original = stack.url("app.example.com", "/private/forged")
    reply = anonymous.request("GET", original, headers=forged)
    assert_sent_to(stack, reply, "login", original, redirect_status(stack))
    bobby = login(stack, "bobby")
    admin = stack.url("app.example.com", "/admin/forged")
    assert bobby.request("GET", admin, headers=forged).status == 403
    dash = stack.url("dash.example.com", "/forged")
    reply = bobby.request("GET", dash, headers=forged)
    assert_sent_to(stack, reply, "reauth", dash, redirect_status(stack))
    assert stack.apps["app"].requests_to("/private/forged") == []
    assert stack.apps["app"].requests_to("/admin/forged") == []
    assert stack.apps["dash"].requests_to("/forged") == []
    # The proxy wrote its own X-Forwarded-Host and -Proto over the client's.
    assert bobby.request("GET", stack.url("app.example.com", "/seen/forwarded"), headers=forged)
    seen = stack.apps["app"].one("/seen/forwarded")
    assert seen.values("X-Forwarded-Host") == [f"app.example.com:{stack.port}"]
    assert seen.values("X-Forwarded-Proto") == ["https"]


def the_portal_does_not_answer_proxy_questions(stack: Stack) -> None:
    browser = stack.browser()
    for path in ("/api/authz/auth-request", "/api/authz/forward-auth"):
        reply = browser.request(
            "GET",
            stack.portal(path),
            headers=[("X-Original-URL", stack.url("app.example.com", "/admin/x"))],
        )
        assert reply.status == 404, (path, reply.status)


def a_request_line_naming_another_host_opens_nothing(stack: Stack) -> None:
    """``GET https://dash.example.com/... HTTP/1.1`` with ``Host: app.example.com``: the
    proxy routes on one and must not ask coatcheck about the other."""
    bobby = login(stack, "bobby")  # password only: dash.example.com (two_factor) is closed
    for browser, path in ((bobby, "/secret"), (stack.browser(), "/public/x")):
        sent = [("Host", f"app.example.com:{stack.port}"), ("Accept", "text/html")]
        jar = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        if jar:
            sent.append(("Cookie", jar))
        reply = browser._send(
            "dash.example.com", "GET", stack.url("dash.example.com", path), sent, None
        )
        assert reply.status != 200, (path, reply.status, reply.text)
        assert stack.apps["dash"].requests_to(path) == []
        assert stack.apps["app"].requests_to(path) == []
