"""Properties of the portal's ``rd`` rule (service.authz.follow / allowed_rd, SPEC §10).

Whatever the value, a login sends the browser either nowhere special (``""``:
the account page), to a same-site path, or to an absolute https URL of a host
the portal may send browsers to, with nothing in it a browser or a proxy could
read two ways (backslashes, whitespace, control or non-ASCII characters).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from hypothesis import example, given
from hypothesis import strategies as st

from coatcheck import CoatCheck
from coatcheck.auth.access import host_under
from coatcheck.core.redirects import is_safe_next
from coatcheck.service.authz import allowed_rd, follow

from ..service.test_authz import sso_app
from .conftest import bounded

RULES = {
    "rules": [
        {"domain": "public.example.com", "policy": "bypass"},
        {"domain": "*.apps.example.com", "policy": "one_factor"},
        {"domain": "tools.partner.net", "policy": "two_factor"},
    ]
}
#: The hosts a login may go back to: under the cookie domain, named in a rule, the portal.
ALLOWED_SUFFIX = "example.com"
NAMED = {"tools.partner.net", "auth.example.com"}

HOSTS = [
    "app.example.com",
    "APP.Example.COM",
    "example.com",
    "auth.example.com",
    "x.apps.example.com",
    "tools.partner.net",
    "evil.example",
    "example.com.evil.net",
    "app.example.com.evil.net",
    "evilexample.com",
    "partner.net",
    "127.0.0.1",
    "[::1]",
    "app.example.com.",
    "app\u3002example\u3002com",
    "xn--80ak6aa92e.com",
]
PIECES = [
    "",
    "/",
    "//",
    "\\",
    "@",
    ":",
    "#",
    "?",
    "%2f",
    "%2F",
    "%5c",
    "%40",
    "%2e%2e",
    "..",
    "%252f",
    "\uff0f",
    "\u3002",
    "\t",
    "\n",
    "\r",
    " ",
    "\x00",
    "\u202e",
    ":443",
    ":8443",
    ":99999",
    "user:pw@",
    "x",
]
SCHEMES = [
    "https://",
    "http://",
    "HTTPS://",
    "//",
    "///",
    "/",
    "https:/",
    "https:",
    "https:\\\\",
    "https:/\\",
    "javascript:",
    "JaVaScRiPt:",
    "data:",
    "ftp://",
    " https://",
    "\thttps://",
    "",
]

urls = st.builds(
    lambda scheme, before, host, after, tail: f"{scheme}{before}{host}{after}{tail}",
    st.sampled_from(SCHEMES),
    st.lists(st.sampled_from(PIECES + [h + "@" for h in HOSTS[:6]]), max_size=2).map("".join),
    st.sampled_from(HOSTS),
    st.lists(st.sampled_from(PIECES + HOSTS), max_size=4).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=4).map("".join),
)
#: Mostly well-formed https URLs of every host, with hostile pieces after the host.
plausible = st.builds(
    lambda host, port, tail: f"https://{host}{port}/{tail}",
    st.sampled_from(HOSTS),
    st.sampled_from(["", ":443", ":8443"]),
    st.lists(st.sampled_from(PIECES + HOSTS), max_size=5).map("".join),
)
values = st.one_of(
    urls, plausible, st.text(max_size=40), st.text(alphabet="/\\@.:%2fFcC5ex", max_size=30)
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    folder: Path = tmp_path_factory.mktemp("rd")
    app = sso_app(folder, COATCHECK_ACCESS_CONTROL=RULES)
    yield app
    CoatCheck.state(app).close()


def _host_allowed(host: str) -> bool:
    return host_under(host, ALLOWED_SUFFIX) or host in NAMED


def _clean(value: str) -> bool:
    return value.isascii() and not any(
        c == "\\" or c.isspace() or unicodedata.category(c) == "Cc" for c in value
    )


def check(result: str, given_value: str) -> None:
    if result == "":
        return
    assert result == given_value  # followed as it is, or not at all
    if is_safe_next(result):
        return
    assert _clean(result), result
    parts = urlsplit(result)
    assert parts.scheme == "https", result
    assert parts.username is None and parts.password is None, result
    host = parts.hostname or ""
    assert _host_allowed(host.rstrip(".")), result
    # Nothing a second decoding could turn into another host or a backslash.
    assert "\\" not in unquote(unquote(parts.netloc)) and "@" not in unquote(parts.netloc)


@bounded(600)
@given(values)
@example("https://app.example.com/x?y=1")
@example("https://evil.example\\@app.example.com/")
@example("https://app.example.com@evil.example/")
@example("https:/\\evil.example")
@example("/\uff0fevil.example")
@example("https://app.example.com\u3002evil.example/")
def test_follow_gives_nothing_a_path_or_an_allowed_https_url(app: Flask, value: str) -> None:
    with app.test_request_context("/login", base_url="https://auth.example.com"):
        result = follow(value)
        check(result, value)
        if result and not is_safe_next(value):
            assert allowed_rd(value)


@bounded(300)
@given(st.one_of(urls, plausible))
def test_allowed_rd_agrees_with_the_host_rule(app: Flask, url: str) -> None:
    with app.test_request_context("/login", base_url="https://auth.example.com"):
        if allowed_rd(url):
            check(url, url)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/x?y=1",
        "https://example.com/",
        "https://x.apps.example.com/a",
        "https://tools.partner.net/x",
        "https://auth.example.com/account",
        "https://app.example.com:8443/",
    ],
)
def test_the_allowed_examples_are_followed(app: Flask, url: str) -> None:
    """The property is not vacuous: these are followed."""
    with app.test_request_context("/login", base_url="https://auth.example.com"):
        assert follow(url) == url
