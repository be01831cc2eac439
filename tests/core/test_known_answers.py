"""Known answers for every stored and signed format: a change of format fails here first.

Each expected value was computed once and is written out literally, so that a
change to a hash input, a salt, a key derivation or an encoding shows up as a
failing test rather than as every stored record and every cookie in the wild
going dark at once. Where it is cheap, the answer is also rebuilt from first
principles (hashlib, hmac, base64) to say what the format is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from coatcheck.core import csrf
from coatcheck.core.ids import hash_token, store_key
from coatcheck.core.records import RecordKind
from coatcheck.core.signing import CookieSigner, signing_keys
from coatcheck.core.tokens import TokenSigner, _derive, _kid

#: A session ID of the exact shape :func:`~coatcheck.core.ids.new_session_id` makes.
SESSION_ID = "Kn0wnAnswerSessionId-0123456789_abcdefghijk"
SECRET_KEY = "known-answer-secret-key-0001"
OLD_KEY = "known-answer-old-key-0000"
#: The signing keys of an app with SECRET_KEY and one fallback: oldest first.
KEYS = signing_keys(SECRET_KEY, [OLD_KEY])
#: 2023-11-14T22:13:20Z, a whole second.
T = 1_700_000_000


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- store keys --------------------------------------------------------------------------

SESSION_KEY = "779b47e4e61e549097e5736b8009be8a648549a0314364a004d0fe988d75368c"


def test_a_session_key_is_the_plain_sha256_hex_of_the_id() -> None:
    assert store_key(SESSION_ID) == SESSION_KEY
    assert store_key(SESSION_ID, purpose="session") == SESSION_KEY
    assert sha256_hex(SESSION_ID) == SESSION_KEY


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (
            RecordKind.SESSION,
            "session",
            "779b47e4e61e549097e5736b8009be8a648549a0314364a004d0fe988d75368c",
        ),
        (
            RecordKind.REMEMBER,
            "remember",
            "44590181c9b6208c1921c2fe15f02d40c2afd160d73a95523b318a790104c198",
        ),
        (
            RecordKind.TOKEN_FAMILY,
            "token-family",
            "3ebe5191d9d992e0eab459feca6cecc6fc338d3d01d37711e13e9e88a1d4f093",
        ),
        (
            RecordKind.STAMP,
            "stamp",
            "51e3a2db9994a2e83b0ad9e5211caa0ef6c4f4062573715d47c508717b83bdb9",
        ),
    ],
)
def test_record_kind_keys(kind: RecordKind, value: str, expected: str) -> None:
    assert kind.value == value
    assert kind.key(SESSION_ID) == expected
    assert store_key(SESSION_ID, purpose=value) == expected
    if kind is not RecordKind.SESSION:
        # Any other purpose hashes "purpose NUL secret".
        assert sha256_hex(f"{value}\0{SESSION_ID}") == expected


def test_keys_of_different_kinds_never_collide() -> None:
    keys = {kind.key(SESSION_ID) for kind in RecordKind}
    assert len(keys) == len(RecordKind)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (
            "refresh-token-0123456789",
            "c98837476237ba183c4ba3c3bc372b270335e379ccc7c4d3a6168684f028a290",
        ),
        ("jetón-🔑", "0c6cb4ad6210f7650fe06605bd04dd8c4f05041ba44dc86f8afe1a1e11032517"),
    ],
)
def test_hash_token(token: str, expected: str) -> None:
    assert hash_token(token) == expected == sha256_hex(token)


# -- signed cookies ----------------------------------------------------------------------

#: "hello" signed for the csrf purpose with SECRET_KEY at T.
SIGNED_HELLO = "ImhlbGxvIg.ZVPxAA.bBql8rY5IhIYOG5VoTjLPbCHivo"
#: The same, signed with the old key alone (before the rotation).
SIGNED_HELLO_OLD = "ImhlbGxvIg.ZVPxAA.ecoib83IiWybwo2ZuCsb1p2rsEs"
#: "series.token" signed for the remember purpose with SECRET_KEY at T.
SIGNED_REMEMBER = "InNlcmllcy50b2tlbiI.ZVPxAA.tjOWE2tfsIRYn_FTeq5tx3g8y3U"


def test_signing_keys_are_oldest_first_and_the_secret_key_last() -> None:
    assert signing_keys(SECRET_KEY, [OLD_KEY]) == [OLD_KEY.encode(), SECRET_KEY.encode()]
    newest, older, oldest = "n" * 16, "b" * 16, "a" * 16
    assert signing_keys(newest, [older, oldest]) == [b"a" * 16, b"b" * 16, b"n" * 16]
    assert signing_keys(newest.encode(), [b"\xff" * 16]) == [b"\xff" * 16, b"n" * 16]


def test_a_signed_cookie_has_a_known_form() -> None:
    signer = CookieSigner(KEYS, "csrf", clock=lambda: T)
    assert signer.sign("hello") == SIGNED_HELLO
    assert signer.verify(SIGNED_HELLO, max_age=60) == "hello"
    remember = CookieSigner(KEYS, "remember", clock=lambda: T)
    assert remember.sign("series.token") == SIGNED_REMEMBER
    assert remember.verify(SIGNED_REMEMBER, max_age=60) == "series.token"


def test_the_signed_form_from_first_principles() -> None:
    """base64url(JSON) . base64url(big-endian time) . base64url(HMAC-SHA1), no padding."""
    payload = b64url(json.dumps("hello", separators=(",", ":")).encode())
    timestamp = b64url(T.to_bytes(4, "big"))
    # itsdangerous' "django-concat" key derivation: SHA-1 of salt + "signer" + key.
    key = hashlib.sha1(b"coatcheck.csrf" + b"signer" + SECRET_KEY.encode()).digest()  # noqa: S324
    message = f"{payload}.{timestamp}".encode()
    signature = b64url(hmac.new(key, message, hashlib.sha1).digest())
    assert f"{payload}.{timestamp}.{signature}" == SIGNED_HELLO


def test_a_fallback_key_still_verifies_and_never_signs() -> None:
    old_only = CookieSigner(signing_keys(OLD_KEY), "csrf", clock=lambda: T)
    assert old_only.sign("hello") == SIGNED_HELLO_OLD
    rotated = CookieSigner(KEYS, "csrf", clock=lambda: T)
    assert rotated.verify(SIGNED_HELLO_OLD, max_age=60) == "hello"
    assert rotated.sign("hello") == SIGNED_HELLO  # the new key signs
    new_only = CookieSigner(signing_keys(SECRET_KEY), "csrf", clock=lambda: T)
    assert new_only.verify(SIGNED_HELLO_OLD, max_age=60) is None
    assert new_only.verify(SIGNED_HELLO, max_age=60) == "hello"


def test_the_purpose_is_part_of_the_signature() -> None:
    signer = CookieSigner(KEYS, "remember", clock=lambda: T)
    assert signer.sign("hello") != SIGNED_HELLO
    assert signer.verify(SIGNED_HELLO, max_age=60) is None


# -- CSRF tokens -------------------------------------------------------------------------

#: The secret whose raw bytes are 100, 101, ..., 131.
CSRF_SECRET = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM"
#: CSRF_SECRET masked with the pad 0, 1, ..., 31.
CSRF_TOKEN = (
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9kZGRkbGxsbGRkZGR8fHx8ZGRkZGxsbGxkZGRknJycnA"
)


def test_a_csrf_secret_is_32_bytes_in_unpadded_base64url() -> None:
    assert b64url(bytes(range(100, 132))) == CSRF_SECRET
    assert csrf.is_secret(CSRF_SECRET)


def test_a_csrf_token_is_pad_then_pad_xor_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    pad = bytes(range(32))
    monkeypatch.setattr(csrf, "secrets", SimpleNamespace(token_bytes=lambda n: pad[:n]))
    token = csrf.mask(CSRF_SECRET)
    assert token == CSRF_TOKEN
    xored = bytes(p ^ s for p, s in zip(pad, range(100, 132), strict=True))
    assert token == b64url(pad + xored)
    assert csrf.matches(token, CSRF_SECRET)


def unmask(token: str) -> str:
    """Return the secret of a token, decoded the plain way (not coatcheck's)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == 64
    return b64url(bytes(a ^ b for a, b in zip(raw[:32], raw[32:], strict=True)))


def test_unmask_of_mask_is_the_secret_and_every_mask_differs() -> None:
    tokens = {csrf.mask(CSRF_SECRET) for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) == 86 and set(token) <= set(csrf_alphabet())
        assert unmask(token) == CSRF_SECRET
        assert csrf.matches(token, CSRF_SECRET)


def csrf_alphabet() -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# -- access tokens -----------------------------------------------------------------------

ISSUER = "https://coatcheck.example"
AUDIENCE = "coatcheck-api"
CLAIMS = {"sub": "42", "jti": "jti-0001", "iat": T, "exp": T + 900}
#: The HS256 key derived from SECRET_KEY, and its key ID.
HS256_KEY = "86086f217a1aeb9bf5102be3f4eb21b6bd3ace4b14e98ab7f87350c15f3f038e"
HS256_KID = "YlUpvuxro3sw"
HS256_OLD_KID = "1qo-x_RkNXYM"
HS256_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IllsVXB2dXhybzNzdyIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiI0MiIsImp0aSI6Imp0aS0wMDAxIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA5MDAsImlzcyI6"
    "Imh0dHBzOi8vY29hdGNoZWNrLmV4YW1wbGUiLCJhdWQiOiJjb2F0Y2hlY2stYXBpIn0"
    ".7Qgqm_uKAD2Dvqc7Lzf0chMaV8wWaH5rtewqMzi8iz8"
)
ED25519_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n"
    b"-----END PRIVATE KEY-----\n"
)
EDDSA_KID = "Ic5Blmdniet7"
EDDSA_TOKEN = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6IkljNUJsbWRuaWV0NyIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiI0MiIsImp0aSI6Imp0aS0wMDAxIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA5MDAsImlzcyI6"
    "Imh0dHBzOi8vY29hdGNoZWNrLmV4YW1wbGUiLCJhdWQiOiJjb2F0Y2hlY2stYXBpIn0"
    ".ak8_erzdjr8xrtmXGVkIQhcmsQ7eNzAZulRhZ0-yS5ajYNVeklnkIQ6N8aRbctvDEdFmGK6UnLIUIK8Hky5fDw"
)


def hs256(secret_keys: list[bytes]) -> TokenSigner:
    return TokenSigner(
        algorithm="HS256",
        issuer=ISSUER,
        audience=AUDIENCE,
        secret_keys=secret_keys,
        clock=lambda: T,
    )


def test_the_hs256_key_is_derived_from_secret_key() -> None:
    derived = hmac.new(SECRET_KEY.encode(), b"coatcheck.jwt.hs256", hashlib.sha256).digest()
    assert _derive(SECRET_KEY.encode()) == derived == bytes.fromhex(HS256_KEY)
    digest = hashlib.sha256(b"coatcheck.kid" + derived).digest()[:9]
    assert _kid(derived) == base64.urlsafe_b64encode(digest).decode() == HS256_KID


def test_an_hs256_token_has_a_known_form() -> None:
    token = hs256(KEYS).sign(dict(CLAIMS))
    assert token == HS256_TOKEN
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": HS256_KID, "typ": "JWT"}
    plain = jwt.decode(
        token,
        bytes.fromhex(HS256_KEY),
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False},  # T is long past
    )
    expected = {**CLAIMS, "iss": ISSUER, "aud": AUDIENCE}
    assert plain == expected
    assert hs256(KEYS).verify(token) == expected


def test_an_hs256_fallback_key_verifies_and_never_signs() -> None:
    old = hs256([OLD_KEY.encode()]).sign(dict(CLAIMS))
    assert jwt.get_unverified_header(old)["kid"] == HS256_OLD_KID
    assert hs256(KEYS).verify(old)["sub"] == "42"
    assert jwt.get_unverified_header(hs256(KEYS).sign(dict(CLAIMS)))["kid"] == HS256_KID


def eddsa() -> TokenSigner:
    return TokenSigner(
        algorithm="EdDSA",
        issuer=ISSUER,
        audience=AUDIENCE,
        private_key_pem=ED25519_PEM,
        clock=lambda: T,
    )


def test_the_ed25519_key_is_the_fixed_one() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pem == ED25519_PEM


def test_an_eddsa_token_has_a_known_form() -> None:
    """Ed25519 signatures are deterministic, so the whole token is a known answer."""
    token = eddsa().sign(dict(CLAIMS))
    assert token == EDDSA_TOKEN
    assert eddsa().verify(token) == {**CLAIMS, "iss": ISSUER, "aud": AUDIENCE}


def test_the_eddsa_jwks_is_known() -> None:
    assert eddsa().jwks() == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
                "kid": EDDSA_KID,
                "alg": "EdDSA",
                "use": "sig",
            }
        ]
    }
    assert hs256(KEYS).jwks() == {"keys": []}
