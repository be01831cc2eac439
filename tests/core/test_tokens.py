"""Access tokens: configuration refused at start, every time claim checked on the clock."""

from __future__ import annotations

import math
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError, TokenError
from coatcheck.core.tokens import ALGORITHMS, TokenSigner, _seconds, new_jti

KEY = b"tokens-test-secret-key-0123456789"
T = 1_700_000_000
CLAIMS: dict[str, Any] = {"sub": "7", "jti": "j-1", "iat": T, "exp": T + 900}


def pem_of(key: Any) -> bytes:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem


ED25519_PEM = pem_of(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def hs256(
    clock: Any = lambda: T, leeway: float = 30, keys: list[bytes] | None = None
) -> TokenSigner:
    return TokenSigner(
        algorithm="HS256",
        issuer="iss",
        audience="aud",
        secret_keys=[KEY] if keys is None else keys,
        leeway=leeway,
        clock=clock,
    )


def refused(signer: TokenSigner, token: str) -> str:
    with pytest.raises(TokenError) as info:
        signer.verify(token)
    return str(info.value)


# -- configuration -----------------------------------------------------------------------


def test_the_algorithms() -> None:
    assert ALGORITHMS == ("HS256", "EdDSA", "RS256")


@pytest.mark.parametrize("algorithm", ["none", "HS512", "hs256", "ES256", ""])
def test_an_unknown_algorithm_is_refused(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match="COATCHECK_JWT_ALGORITHM must be one of"):
        TokenSigner(algorithm=algorithm, issuer="i", audience="a", secret_keys=[KEY])


def test_hs256_needs_a_secret_key() -> None:
    with pytest.raises(ConfigurationError, match="HS256 tokens need SECRET_KEY"):
        TokenSigner(algorithm="HS256", issuer="i", audience="a")


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
def test_asymmetric_algorithms_need_a_private_key(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{algorithm} tokens need"):
        TokenSigner(algorithm=algorithm, issuer="i", audience="a", secret_keys=[KEY])


@pytest.mark.parametrize("pem", [b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_a_private_key_must_be_pem(pem: bytes) -> None:
    with pytest.raises(ConfigurationError, match="is not a PEM private key"):
        TokenSigner(algorithm="EdDSA", issuer="i", audience="a", private_key_pem=pem)


@pytest.fixture(scope="module")
def rsa_2048() -> bytes:
    return pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_the_key_must_suit_the_algorithm(rsa_2048: bytes) -> None:
    with pytest.raises(ConfigurationError, match="is not a key for EdDSA"):
        TokenSigner(algorithm="EdDSA", issuer="i", audience="a", private_key_pem=rsa_2048)
    with pytest.raises(ConfigurationError, match="is not a key for RS256"):
        TokenSigner(algorithm="RS256", issuer="i", audience="a", private_key_pem=ED25519_PEM)


def test_rsa_keys_need_2048_bits(rsa_2048: bytes) -> None:
    small = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ConfigurationError, match="at least 2048 bits"):
        TokenSigner(algorithm="RS256", issuer="i", audience="a", private_key_pem=small)
    signer = TokenSigner(
        algorithm="RS256", issuer="i", audience="a", private_key_pem=rsa_2048, clock=lambda: T
    )
    assert signer.verify(signer.sign(dict(CLAIMS)))["sub"] == "7"
    [jwk] = signer.jwks()["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == ("RSA", "RS256", "sig", "AQAB")


def test_an_asymmetric_signer_ignores_secret_keys() -> None:
    signer = TokenSigner(
        algorithm="EdDSA",
        issuer="i",
        audience="a",
        private_key_pem=ED25519_PEM,
        secret_keys=[KEY],
        clock=lambda: T,
    )
    token = signer.sign(dict(CLAIMS))
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert signer.verify(token)["sub"] == "7"


# -- time, on the injected clock ---------------------------------------------------------


def test_expiry_with_leeway_on_the_clock() -> None:
    clock = ManualClock(T)
    signer = hs256(clock=clock, leeway=30)
    token = signer.sign(dict(CLAIMS))
    clock.now = T + 900 + 29.5
    assert signer.verify(token)["sub"] == "7"
    clock.now = T + 900 + 30
    assert refused(signer, token) == "ExpiredSignatureError"
    assert signer.verify(token, verify_exp=False)["sub"] == "7"


def test_issued_in_the_future_with_leeway_on_the_clock() -> None:
    clock = ManualClock(T - 30)
    signer = hs256(clock=clock, leeway=30)
    token = signer.sign(dict(CLAIMS))
    assert signer.verify(token)["sub"] == "7"
    clock.now = T - 30.5
    assert refused(signer, token) == "ImmatureSignatureError"
    assert refused(hs256(clock=clock, leeway=0), token) == "ImmatureSignatureError"


def test_the_default_leeway_is_30_seconds() -> None:
    signer = TokenSigner(
        algorithm="HS256", issuer="iss", audience="aud", secret_keys=[KEY], clock=lambda: T + 929
    )
    assert signer.leeway == 30
    assert signer.verify(signer.sign(dict(CLAIMS)))["sub"] == "7"


def test_the_default_clock_is_the_system_clock() -> None:
    signer = TokenSigner(algorithm="HS256", issuer="iss", audience="aud", secret_keys=[KEY])
    assert refused(signer, signer.sign(dict(CLAIMS))) == "ExpiredSignatureError"  # T is past


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", math.nan),
        ("exp", math.inf),
        ("exp", 10**400),
        ("exp", "soon"),
        ("exp", True),
        ("iat", math.nan),
        ("iat", -math.inf),
    ],
)
def test_time_claims_must_be_finite_numbers(claim: str, value: Any) -> None:
    signer = hs256()
    token = jwt.encode(
        {**CLAIMS, claim: value, "iss": "iss", "aud": "aud"},
        signer._keys[0].signing,
        algorithm="HS256",
        headers={"kid": signer._keys[0].kid},
    )
    assert refused(signer, token) == "exp and iat must be finite numbers"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5.0),
        (5.5, 5.5),
        (-1, -1.0),
        (True, None),
        (False, None),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (10**400, None),
        ("5", None),
        (None, None),
    ],
)
def test_seconds(value: Any, expected: float | None) -> None:
    assert _seconds(value) == expected


# -- what is refused, and why ------------------------------------------------------------


def test_the_length_limit_is_8192() -> None:
    signer = hs256()
    assert refused(signer, "a" * 8193) == "token too long"
    assert refused(signer, "a" * 8192) == "malformed token"


@pytest.mark.parametrize("token", ["é.é.é", "\ud800.a.b"])
def test_non_ascii_is_malformed(token: str) -> None:
    assert refused(hs256(), token) == "malformed token"


def test_an_unknown_kid_is_refused() -> None:
    other = hs256(keys=[b"another-key-of-some-length"]).sign(dict(CLAIMS))
    assert refused(hs256(), other) == "unknown signing key"
    no_kid = jwt.encode({**CLAIMS, "iss": "iss", "aud": "aud"}, b"k" * 32, algorithm="HS256")
    assert refused(hs256(), no_kid) == "unknown signing key"


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti"])
def test_every_claim_is_required(missing: str) -> None:
    signer = hs256()
    claims = dict(CLAIMS)
    del claims[missing]
    assert refused(signer, signer.sign(claims)) == "MissingRequiredClaimError"


def test_issuer_and_audience_are_checked() -> None:
    token = hs256().sign(dict(CLAIMS))
    other_issuer = TokenSigner(
        algorithm="HS256", issuer="other", audience="aud", secret_keys=[KEY], clock=lambda: T
    )
    other_audience = TokenSigner(
        algorithm="HS256", issuer="iss", audience="other", secret_keys=[KEY], clock=lambda: T
    )
    assert refused(other_issuer, token) == "InvalidIssuerError"
    assert refused(other_audience, token) == "InvalidAudienceError"


def test_sign_sets_issuer_and_audience_over_the_claims() -> None:
    signer = hs256()
    token = signer.sign({**CLAIMS, "iss": "forged", "aud": "forged"})
    claims = signer.verify(token)
    assert (claims["iss"], claims["aud"]) == ("iss", "aud")


def test_a_new_jti_is_random_url_safe_text() -> None:
    jtis = {new_jti() for _ in range(100)}
    assert len(jtis) == 100
    assert all(len(j) == 22 for j in jtis)
