"""JSON Web Tokens for API access: signing, verification, key rotation.

HS256 with a key derived from ``SECRET_KEY`` by default; every key in
``SECRET_KEY_FALLBACKS`` still verifies. EdDSA or RS256 with a configured
private key, whose public half is published as a JWKS. Verification accepts
the configured algorithm only, so ``none`` and algorithm confusion (an
RS256 public key used as an HS256 secret) are refused by construction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .clock import Clock, system_clock
from .errors import ConfigurationError, TokenError
from .settings import Settings

ALGORITHMS = ("HS256", "EdDSA", "RS256")


@dataclass(frozen=True)
class _Key:
    kid: str
    signing: Any
    verifying: Any


class TokenSigner:
    """Sign and verify access tokens for one issuer and audience."""

    def __init__(
        self,
        *,
        algorithm: str,
        issuer: str,
        audience: str,
        secret_keys: Sequence[bytes] = (),
        private_key_pem: bytes | None = None,
        leeway: float = 30,
        clock: Clock = system_clock,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"COATCHECK_JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}"
            )
        self.algorithm, self.issuer, self.audience = algorithm, issuer, audience
        self.leeway, self.clock = leeway, clock
        if algorithm == "HS256":
            if not secret_keys:
                raise ConfigurationError("HS256 tokens need SECRET_KEY")
            # The newest key signs (itsdangerous order: oldest first, newest last).
            derived = [_derive(k) for k in secret_keys]
            self._keys = [_Key(_kid(k), k, k) for k in reversed(derived)]
        else:
            if not private_key_pem:
                raise ConfigurationError(f"{algorithm} tokens need COATCHECK_JWT_PRIVATE_KEY")
            private = _load_private(private_key_pem, algorithm)
            public = private.public_key()
            raw = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self._keys = [_Key(_kid(raw), private, public)]
        self._by_kid = {k.kid: k for k in self._keys}

    def sign(self, claims: dict[str, Any]) -> str:
        """Return a signed token of ``claims`` plus ``iss`` and ``aud``."""
        key = self._keys[0]
        payload = {**claims, "iss": self.issuer, "aud": self.audience}
        return jwt.encode(payload, key.signing, algorithm=self.algorithm, headers={"kid": key.kid})

    def verify(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Return the claims of a valid token; raise :class:`TokenError` otherwise."""
        if len(token) > 8192:
            raise TokenError("token too long")
        if not token.isascii():  # a JWT is base64url and dots
            raise TokenError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed token") from exc
        key = self._by_kid.get(str(header.get("kid", "")))
        if key is None:
            raise TokenError("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.verifying,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                # Times are checked below against the injectable clock.
                options={
                    "require": ["exp", "iat", "sub", "jti", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from exc
        exp, iat = _seconds(claims["exp"]), _seconds(claims["iat"])
        if exp is None or iat is None:
            raise TokenError("exp and iat must be finite numbers")
        now = self.clock()
        if verify_exp and exp + self.leeway <= now:
            raise TokenError("ExpiredSignatureError")
        if iat - self.leeway > now:
            raise TokenError("ImmatureSignatureError")
        return claims

    def jwks(self) -> dict[str, Any]:
        """Return the public keys as a JWK Set (empty for HS256: its key is secret)."""
        if self.algorithm == "HS256":
            return {"keys": []}
        keys = []
        for key in self._keys:
            jwk: dict[str, Any] = jwt.algorithms.get_default_algorithms()[self.algorithm].to_jwk(
                key.verifying, as_dict=True
            )
            keys.append({**jwk, "kid": key.kid, "alg": self.algorithm, "use": "sig"})
        return {"keys": keys}


def _seconds(value: Any) -> float | None:
    """Return a time claim as a finite float, or ``None``.

    JSON lets a token carry ``NaN`` (which compares false with everything, so
    it would never expire), ``Infinity``, and integers too large for a float.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def make_token_signer(settings: Settings, keys: list[bytes], clock: Clock) -> TokenSigner:
    """Return the token signer the settings describe."""
    pem: bytes | None = None
    if settings.jwt_private_key:
        text = settings.jwt_private_key
        if "-----BEGIN" in text:
            pem = text.encode()
        else:
            try:
                with open(text, "rb") as file:
                    pem = file.read()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read COATCHECK_JWT_PRIVATE_KEY file {text}: {exc}"
                ) from None
    return TokenSigner(
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        secret_keys=keys,
        private_key_pem=pem,
        leeway=settings.jwt_leeway,
        clock=clock,
    )


def new_jti() -> str:
    """Return a new random token ID."""
    return secrets.token_urlsafe(16)


def _derive(secret_key: bytes) -> bytes:
    # A key of its own for tokens, 32 bytes whatever the length of SECRET_KEY.
    return hmac.new(secret_key, b"coatcheck.jwt.hs256", hashlib.sha256).digest()


def _kid(material: bytes) -> str:
    digest = hashlib.sha256(b"coatcheck.kid" + material).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _load_private(pem: bytes, algorithm: str) -> Any:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"COATCHECK_JWT_PRIVATE_KEY is not a PEM private key: {exc}"
        ) from None
    expected = ed25519.Ed25519PrivateKey if algorithm == "EdDSA" else rsa.RSAPrivateKey
    if not isinstance(key, expected):
        raise ConfigurationError(f"COATCHECK_JWT_PRIVATE_KEY is not a key for {algorithm}")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise ConfigurationError("COATCHECK_JWT_PRIVATE_KEY: RSA keys need at least 2048 bits")
    return key
