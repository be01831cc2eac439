"""Hypothesis strategies for hostile client input: headers, tokens, JSON bodies."""

from __future__ import annotations

import base64
import json
import string
from typing import Any

from hypothesis import strategies as st

from .conftest import CSRF, LIVE_ID, REMEMBER, SESSION

#: The alphabet of session IDs, CSRF tokens and base64url in general.
B64URL = string.ascii_letters + string.digits + "-_"
#: RFC 6265 cookie-octets, less ``"`` and ``\\`` (which only parsers that unquote read).
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in {'"', ",", ";", "\\"})
#: RFC 9110 token characters: what a well-formed cookie name is made of.
TOKEN_CHARS = "".join(c for c in COOKIE_OCTETS if c not in "()<>@:/[]?={}")

any_text = st.text(max_size=80)
latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80)


def huge(pieces: st.SearchStrategy[str], *, at_most: int = 20_000) -> st.SearchStrategy[str]:
    """Return a strategy of one piece repeated up to ``at_most`` times."""
    return st.builds(lambda p, n: p * n, pieces, st.integers(1, at_most))


def b64url(raw: bytes) -> str:
    """Return ``raw`` in unpadded base64url, as JWTs and CSRF tokens have it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def mutate(value: str, mutation: tuple[str, int, str]) -> str:
    """Apply one of the edits :data:`mutations` draws to ``value``."""
    kind, index, text = mutation
    index %= len(value) + 1
    if kind == "replace" and index < len(value):
        return value[:index] + text + value[index + 1 :]
    if kind == "delete":
        return value[:index] + value[index + len(text) + 1 :]
    if kind == "truncate":
        return value[:index]
    if kind == "append":
        return value + text
    return value[:index] + text + value[index:]


#: Edits of a token: replace or delete around a position, insert, append, cut short.
mutations = st.tuples(
    st.sampled_from(["replace", "insert", "delete", "truncate", "append"]),
    st.integers(0, 2**16),
    st.one_of(
        st.sampled_from([*B64URL, "=", "==", ".", " ", "\t", "%3D", "\x00"]),
        st.text(min_size=1, max_size=4),
    ),
)

#: Three dot-separated base64url segments of anything: JWT-shaped junk.
jwt_shaped = st.lists(
    st.one_of(st.binary(max_size=60).map(b64url), st.text(alphabet=B64URL, max_size=60)),
    min_size=3,
    max_size=3,
).map(".".join)

# -- the Cookie header -----------------------------------------------------------------

cookie_names = st.one_of(
    st.sampled_from(
        [
            SESSION,
            REMEMBER,
            CSRF,
            "__host-session",
            "__Host-Session",
            "__Host-sessio",
            "__Host-session_",
            "Host-session",
            "session",
        ]
    ),
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=16),
)
id_shaped = st.text(alphabet=B64URL, min_size=43, max_size=43)
near_live = st.builds(mutate, st.just(LIVE_ID), mutations)
well_formed_values = st.one_of(
    st.just(LIVE_ID),
    id_shaped,
    near_live.filter(lambda v: all(c in COOKIE_OCTETS for c in v)),
    st.text(alphabet=COOKIE_OCTETS, max_size=60),
)
#: A well-formed header as (name, value) pairs: the pairs are the reference parse.
cookie_pairs = st.lists(st.tuples(cookie_names, well_formed_values), max_size=12)

_fragments = st.one_of(
    cookie_names,
    st.just(LIVE_ID),
    near_live,
    id_shaped,
    st.sampled_from([";", "; ", "=", ";;", "==", " ", "\t", ",", '"', "\\", "\x00", "\r\n"]),
    st.sampled_from([f"{SESSION}=", f"{SESSION}={LIVE_ID}", f'{SESSION}="{LIVE_ID}"']),
    any_text,
    latin1_text,
)
#: Any header text at all: fragments of cookies glued anyhow, junk, and huge ones.
cookie_headers = st.one_of(
    st.lists(_fragments, max_size=30).map("".join),
    any_text,
    huge(st.sampled_from([";", "=", "; a=b", f"{SESSION}=", f"{SESSION}={LIVE_ID};", "\xff"])),
    st.tuples(huge(st.sampled_from(["x", ";", "="]), at_most=100_000), st.just(LIVE_ID)).map(
        lambda t: f"{t[0]}; {SESSION}={t[1]}"
    ),
)


def wsgi_text(header: str | bytes) -> str:
    """Return header text as a WSGI server passes it: its UTF-8 bytes read as latin-1."""
    raw = header if isinstance(header, bytes) else header.encode("utf-8", "surrogatepass")
    return raw.decode("latin-1")


# -- JSON bodies -----------------------------------------------------------------------

FIELDS = (
    "username",
    "password",
    "email",
    "remember",
    "current_password",
    "new_password",
    "refresh_token",
    "token",
    "roles",
)
PLAUSIBLE = st.sampled_from(
    [
        "",
        "alice",
        "fuzzadmin",
        "correct horse battery",
        "a-new-password-of-length",
        "x@example.com",
        "admin",
        "user",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "\ud800",
        "\udfff\ud800",
        "\x00",
        "\u202e",
        "A" * 129,
    ]
)
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**4000),
    st.floats(),
    any_text,
    PLAUSIBLE,
    huge(st.sampled_from(["a", "\u00e9", "\ud83d\ude00", "\\", '"']), at_most=50_000),
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.one_of(any_text, PLAUSIBLE), inner)
    ),
    max_leaves=20,
)
json_objects = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(json_values, PLAUSIBLE, st.lists(PLAUSIBLE, max_size=4)) for name in FIELDS
    },
).flatmap(
    lambda known: st.dictionaries(any_text, json_values, max_size=3).map(
        lambda extra: {**extra, **known}
    )
)


def encoded_json(value: Any, ascii_only: bool) -> bytes:
    """Return ``value`` as JSON text bytes; lone surrogates become ``\\ud800`` escapes."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


#: Request bodies: JSON objects and other JSON values, raw bytes, deep nesting.
bodies = st.one_of(
    st.builds(encoded_json, json_objects, st.booleans()),
    st.builds(encoded_json, json_values, st.booleans()),
    st.binary(max_size=200),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/merge-patch+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)
