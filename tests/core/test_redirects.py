"""``next`` is followed only when it is a same-site relative path."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from coatcheck.core.redirects import MAX_NEXT_LENGTH, is_safe_next, safe_next

ORIGIN = "https://app.example/account/settings"

SAFE = [
    "/",
    "/account",
    "/account/",
    "/account/keys?tab=new&sort=-created",
    "/search?q=two%20words",
    "/search?q=two+words",
    "/docs#install",
    "/docs/page?x=1#section-2",
    "/a/b/../c",
    "/./account",
    "/a//b",
    "/café/menü",
    "/files/report%2Epdf",
    "/path/with:colon",
    "/next?url=https://elsewhere.example/",
    "/@user",
    "/" + "a" * (MAX_NEXT_LENGTH - 1),
]

UNSAFE = [
    # Not a path at all.
    None,
    "",
    " ",
    "account",
    "./account",
    "../account",
    "?next=/",
    "#top",
    "evil.example",
    # Protocol-relative: another host.
    "//evil.example",
    "///evil.example",
    "////evil.example",
    "//evil.example/path?x=1",
    # Backslashes, which browsers read as slashes.
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "\\evil.example",
    "/path\\to",
    # Schemes.
    "http://evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "http:evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "mailto:someone@evil.example",
    # Whitespace and control characters, which browsers strip or drop.
    " /account",
    "/account ",
    "\t//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\x0c/evil.example",
    "/\x7f",
    "/\x85/evil.example",
    "/\u00a0/evil.example",
    "/\u3000/evil.example",
    "/\u2028/evil.example",
    "/account\nSet-Cookie: x=1",
    # The same, percent-encoded.
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0A/evil.example",
    "/%0d/evil.example",
    "/%0d%0aSet-Cookie:%20x=1",
    "/%00",
    "/%7f",
    "/%c2%a0/evil.example",
    "/%2f/evil.example",
    "/%2F/evil.example",
    "/%2fevil.example",
    "/%5c/evil.example",
    "/%5Cevil.example",
    "/%252f/evil.example",
    "/%25252f/evil.example",
    "%2f%2fevil.example",
    "/path%5cto",
    # Unicode look-alikes that NFKC folds to / or \.
    "／／evil.example",
    "/／evil.example",
    "/＼evil.example",
    "/﹨evil.example",
    "/％２ｆevil.example",
    # Too long.
    "/" + "a" * MAX_NEXT_LENGTH,
]


@pytest.mark.parametrize("target", SAFE)
def test_same_site_paths_are_followed(target: str) -> None:
    assert is_safe_next(target)
    assert safe_next(target) == target
    assert urlsplit(urljoin(ORIGIN, target)).netloc == "app.example"


@pytest.mark.parametrize("target", UNSAFE)
def test_open_redirects_are_refused(target: str | None) -> None:
    assert not is_safe_next(target)
    assert safe_next(target) == "/"
    assert safe_next(target, default="/home") == "/home"


def test_the_length_limit_is_inclusive() -> None:
    assert is_safe_next("/" + "x" * (MAX_NEXT_LENGTH - 1))
    assert not is_safe_next("/" + "x" * MAX_NEXT_LENGTH)


def test_non_strings_are_refused() -> None:
    assert not is_safe_next(b"/account")  # type: ignore[arg-type]
    assert safe_next(42, default="/home") == "/home"  # type: ignore[arg-type]


@given(st.text(max_size=60))
@example("//evil.example")
@example("/\\evil.example")
@example("/%2f%2fevil.example")
@example("/\t/evil.example")
def test_safe_next_returns_the_default_or_a_local_path(target: str) -> None:
    result = safe_next(target, default="/home")
    if result == "/home":
        return
    assert result == target
    assert result.startswith("/")
    assert not result.startswith(("//", "/\\"))
    assert "\\" not in result
    assert urlsplit(urljoin(ORIGIN, result)).netloc == "app.example"


@given(st.text(alphabet="/\\%2fFc5:.@ \t\nahx／＼", max_size=12))
def test_slash_heavy_input_never_leaves_the_site(target: str) -> None:
    result = safe_next(target)
    assert result == "/" or (result == target and is_safe_next(result))
    assert not result.startswith(("//", "/\\"))
    assert urlsplit(urljoin(ORIGIN, result)).netloc == "app.example"


@given(st.from_regex(r"\A/[a-z0-9_\-]{1,12}(/[a-z0-9_\-]{1,12}){0,3}(\?[a-z]=[a-z0-9]{0,5})?\Z"))
def test_ordinary_paths_are_kept(target: str) -> None:
    assert safe_next(target, default="/home") == target


@pytest.mark.parametrize(
    "target", ["/a%20%09b", "/a%20%0a//evil.example", "/q?x=%20%5cevil", "/a%20%00"]
)
def test_an_encoded_space_does_not_hide_what_follows(target: str) -> None:
    """An allowed %20 is skipped, and the characters after it are still checked."""
    assert is_safe_next(target) is False
    assert is_safe_next("/a%20b") is True
