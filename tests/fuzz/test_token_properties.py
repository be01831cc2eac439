"""Properties of the token parsers: CSRF tokens, signed cookies, bearer JWTs.

Nothing made without the secret is accepted, nothing altered is accepted,
and nothing raises but the one exception each parser documents. Bounded and
derandomized like every property in ``tests/fuzz``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any
from unittest import mock

import jwt
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from coatcheck.core import csrf
from coatcheck.core.errors import TokenError
from coatcheck.core.signing import CookieSigner, signing_keys
from coatcheck.core.tokens import TokenSigner, _derive

from .conftest import KEYS, bounded
from .strategies import (
    B64URL,
    any_text,
    b64url,
    json_objects,
    json_values,
    jwt_shaped,
    mutate,
    mutations,
)

# -- CSRF tokens -----------------------------------------------------------------------

secrets_raw = st.binary(min_size=csrf.SECRET_BYTES, max_size=csrf.SECRET_BYTES)


def mask_with(secret: str, pad: bytes) -> str:
    """Return :func:`csrf.mask` of ``secret`` with ``pad`` as its random pad.

    A drawn pad instead of a random one: what a mutation of the token hits
    (the last character's spare bits, say) is then the same on every run.
    """
    with mock.patch.object(csrf, "secrets", SimpleNamespace(token_bytes=lambda n: pad[:n])):
        return csrf.mask(secret)


@bounded(200)
@given(secrets_raw)
def test_a_masked_token_matches_its_secret(raw: bytes) -> None:
    secret = b64url(raw)
    first, second = csrf.mask(secret), csrf.mask(secret)
    assert csrf.matches(first, secret) and csrf.matches(second, secret)


@bounded(200)
@given(secrets_raw, secrets_raw, secrets_raw)
def test_a_token_of_another_secret_never_matches(mine: bytes, theirs: bytes, pad: bytes) -> None:
    assume(mine != theirs)
    assert not csrf.matches(mask_with(b64url(theirs), pad), b64url(mine))


@bounded(300)
@given(secrets_raw, secrets_raw, mutations)
@example(b"\x01" * 32, b"\x02" * 32, ("append", 0, "=="))
@example(b"\x01" * 32, b"\x02" * 32, ("append", 0, "="))
@example(b"\x01" * 32, b"\x02" * 32, ("insert", 0, "\u00e9"))
@example(b"\x01" * 32, b"\x02" * 32, ("replace", 85, "h"))
def test_a_mutated_token_never_matches(
    raw: bytes, pad: bytes, mutation: tuple[str, int, str]
) -> None:
    secret = b64url(raw)
    token = mask_with(secret, pad)
    assert csrf.matches(token, secret)
    tampered = mutate(token, mutation)
    assume(tampered != token)
    assert not csrf.matches(tampered, secret)


@bounded(300)
@given(any_text, st.one_of(any_text, secrets_raw.map(b64url)))
@example("", "")
@example("\ud800" * 86, "A" * 43)
@example("=" * 86, "=" * 43)
def test_arbitrary_text_never_matches_and_never_raises(token: str, secret: str) -> None:
    assert csrf.matches(token, secret) is False


OWN = "https://desk.example"
TRUSTED = ("https://partner.example/",)
fetch_sites = st.one_of(
    st.none(), st.sampled_from(["same-origin", "same-site", "none", "cross-site"]), any_text
)


def same_origin(origin: str) -> bool:
    """The SPEC's rule: the app's own origin or a trusted one, ASCII case aside."""
    normal = origin.strip(" \t").rstrip("/")
    allowed = {OWN, *(t.rstrip("/") for t in TRUSTED)}
    return normal.isascii() and normal.lower() in allowed


@bounded(300)
@given(fetch_sites, st.one_of(st.none(), any_text, st.sampled_from([OWN, "null", OWN + "/"])))
@example("CROSS-SITE ", OWN)
@example(None, "HTTPS://DESK.EXAMPLE/")
@example(None, " https://desk.example\t")
@example(None, "https://partner.example")
@example(None, "https://desk.example.evil")
@example(None, "https://des\u212a.example")  # KELVIN SIGN: lower() makes it "k"
@example(None, "\u3000https://desk.example")  # str.strip() strips any Unicode space
def test_origin_failure(sec_fetch_site: str | None, origin: str | None) -> None:
    reason = csrf.origin_failure(
        sec_fetch_site=sec_fetch_site, origin=origin, own_origin=OWN, trusted_origins=TRUSTED
    )
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site":
        assert reason == csrf.REASON_CROSS_SITE
    elif origin is not None and not same_origin(origin):
        assert reason == csrf.REASON_BAD_ORIGIN
    else:
        assert reason is None


# -- signed cookies (double-submit CSRF and remember-me) -------------------------------

purposes = st.sampled_from(["csrf", "remember"])
#: When every cookie here is signed and checked: a signed value is then the same on every run.
SIGNED_AT = 1_800_000_000


def cookie_signer(purpose: str, keys: list[bytes] = KEYS) -> CookieSigner:
    return CookieSigner(keys, purpose, clock=lambda: SIGNED_AT)


@bounded(200)
@given(purposes, any_text)
def test_a_signed_value_round_trips(purpose: str, value: str) -> None:
    signer = cookie_signer(purpose)
    assert signer.verify(signer.sign(value), max_age=60) == value


@bounded(300)
@given(purposes, st.text(max_size=60), mutations)
@example("csrf", "hello", ("append", 0, "="))
@example("csrf", "hello", ("append", 0, "=="))
@example("csrf", "hello", ("insert", 30, "\u00e9"))
@example("remember", "series.token", ("append", 0, "\x00"))
def test_any_tampering_of_a_signed_value_fails(
    purpose: str, value: str, mutation: tuple[str, int, str]
) -> None:
    signer = cookie_signer(purpose)
    signed = signer.sign(value)
    tampered = mutate(signed, mutation)
    assume(tampered != signed)
    assert signer.verify(tampered, max_age=60) is None


@bounded(100)
@given(purposes, st.text(max_size=60))
def test_a_value_signed_for_another_purpose_or_key_fails(purpose: str, value: str) -> None:
    other = "remember" if purpose == "csrf" else "csrf"
    signer = cookie_signer(purpose)
    assert signer.verify(cookie_signer(other).sign(value), max_age=60) is None
    foreign = cookie_signer(purpose, signing_keys("another-secret-key-0123456789"))
    assert signer.verify(foreign.sign(value), max_age=60) is None


@bounded(300)
@given(purposes, st.one_of(any_text, st.text(alphabet="._-=Aa0", max_size=80)))
@example("csrf", "..")
@example("csrf", ".eJw.x.y")
@example("remember", "\ud800.\udfff.\x00")
def test_arbitrary_text_never_verifies_and_never_raises(purpose: str, text: str) -> None:
    assert cookie_signer(purpose).verify(text, max_age=60) is None


# -- bearer tokens ---------------------------------------------------------------------

NOW = 1_800_000_000.0
LEEWAY = 30.0
TOKENS = TokenSigner(
    algorithm="HS256",
    issuer="coatcheck",
    audience="coatcheck",
    secret_keys=KEYS,
    leeway=LEEWAY,
    clock=lambda: NOW,
)
#: The HS256 key and key ID of :data:`TOKENS`, to forge tokens only the app could sign.
JWT_KEY = _derive(KEYS[-1])
KID = str(jwt.get_unverified_header(TOKENS.sign({}))["kid"])
VALID_CLAIMS: dict[str, Any] = {
    "sub": "1",
    "jti": "j",
    "iss": "coatcheck",
    "aud": "coatcheck",
    "iat": int(NOW),
    "exp": int(NOW) + 900,
}
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def forge(header: Any, payload: Any, *, alg: str = "HS256", key: bytes = JWT_KEY) -> str:
    """Return a JWT of any header and payload (JSON values or raw text), HMAC-signed."""
    segments = [
        b64url(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
        if isinstance(part, str | bytes)
        else b64url(json.dumps(part).encode("utf-8", "surrogatepass"))
        for part in (header, payload)
    ]
    signing_input = ".".join(segments).encode("ascii")
    digest = HASHES.get(alg, hashlib.sha256)
    signature = b"" if alg == "none" else hmac.new(key, signing_input, digest).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


def assert_refused(token: str) -> None:
    with pytest.raises(TokenError):
        TOKENS.verify(token)


def test_a_forged_valid_token_verifies() -> None:
    assert TOKENS.verify(forge({"alg": "HS256", "kid": KID}, VALID_CLAIMS)) == VALID_CLAIMS


@bounded(300)
@given(st.one_of(any_text, jwt_shaped, st.text(alphabet=B64URL + ".=", max_size=120)))
@example("\ud800.\ud800.\ud800")
@example("é.é.é")
@example(b64url(b"[" * 6000) + ".e30.")
@example("a" * 9000)
def test_arbitrary_text_is_refused_with_token_error(token: str) -> None:
    assert_refused(token)


headers = st.one_of(
    json_values,
    st.fixed_dictionaries({"alg": st.sampled_from(["HS256", "none", "RS256"]), "kid": json_values}),
    st.fixed_dictionaries({"alg": json_values, "kid": st.just(KID)}),
)


@bounded(300)
@given(headers, st.one_of(json_values, json_objects, any_text))
@example({"alg": "HS256", "kid": KID}, "not json")
@example({"alg": "HS256", "kid": KID}, [VALID_CLAIMS])
@example({"alg": "HS256", "kid": [KID]}, VALID_CLAIMS)
@example({"alg": "HS256", "kid": KID, "crit": ["x"]}, {**VALID_CLAIMS, "exp": "soon"})
def test_any_header_and_payload_signed_with_the_right_key_is_sane_or_refused(
    header: Any, payload: Any
) -> None:
    try:
        claims = TOKENS.verify(forge(header, payload))
    except TokenError:
        return
    assert claims["iss"] == "coatcheck" and claims["sub"] and claims["jti"]
    assert NOW - LEEWAY < float(claims["exp"]) < float("inf")
    assert float(claims["iat"]) <= NOW + LEEWAY


not_a_list_with_audience = json_values.filter(
    lambda v: v != "coatcheck" and not (isinstance(v, list) and "coatcheck" in v)
)
wrong_times = st.sampled_from([float("nan"), float("inf"), 10**400, "soon", True, None, [], {}])
breaks = st.one_of(
    st.tuples(st.just("iss"), json_values.filter(lambda v: v != "coatcheck")),
    st.tuples(st.just("aud"), not_a_list_with_audience),
    st.tuples(st.just("sub"), st.one_of(st.integers(), st.none(), st.lists(any_text))),
    st.tuples(
        st.just("exp"),
        st.one_of(
            st.floats(max_value=NOW - LEEWAY), st.integers(max_value=int(NOW - LEEWAY)), wrong_times
        ),
    ),
    st.tuples(
        st.just("iat"),
        st.one_of(st.floats(min_value=NOW + LEEWAY, exclude_min=True), wrong_times),
    ),
    st.tuples(st.just("missing"), st.sampled_from(sorted(VALID_CLAIMS))),
    st.tuples(st.just("alg"), st.sampled_from(["HS384", "HS512", "none", "hs256", "RS256"])),
    st.tuples(st.just("kid"), st.one_of(st.none(), any_text.filter(lambda k: k != KID))),
    st.tuples(st.just("key"), st.binary(min_size=1, max_size=64).filter(lambda k: k != JWT_KEY)),
)


@bounded(300)
@given(breaks, st.dictionaries(any_text.filter(lambda k: k not in VALID_CLAIMS), json_values))
@example(("exp", float("nan")), {})
@example(("exp", float("inf")), {})
@example(("exp", 10**400), {})
@example(("iat", float("nan")), {})
@example(("iat", -(10**400)), {})
@example(("alg", "none"), {})
@example(("alg", "HS512"), {})
def test_a_token_with_one_thing_wrong_never_verifies(
    wrong: tuple[str, Any], extra: dict[str, Any]
) -> None:
    what, value = wrong
    header: dict[str, Any] = {"alg": "HS256", "kid": KID}
    claims = {**extra, **VALID_CLAIMS}
    key, alg = JWT_KEY, "HS256"
    if what == "missing":
        del claims[value]
    elif what == "alg":
        header["alg"] = alg = value
    elif what == "kid":
        header["kid"] = value
    elif what == "key":
        key = value
    else:
        claims[what] = value
    assert_refused(forge(header, claims, alg=alg, key=key))
