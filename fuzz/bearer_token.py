"""Fuzz bearer tokens: ``TokenSigner.verify`` and the Authorization header.

The first byte picks what the rest is: (0) a token, as UTF-8 text; (1) a JWT
header and payload separated by a NUL byte, signed here with the right key
(what only the app could sign, so that the fuzzer gets past the signature to
the claim checks); (2) an Authorization header sent to the app. A crash is
any exception but ``TokenError``, claims accepted that are not sane, or
anything but a 401 from the app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import sys

import atheris

with atheris.instrument_imports(include=["coatcheck", "harness", "jwt"]):
    import harness
    import jwt

    from coatcheck.core.errors import TokenError
    from coatcheck.core.signing import signing_keys
    from coatcheck.core.tokens import TokenSigner, _derive

NOW = 1_800_000_000.0
LEEWAY = 30.0
KEYS = signing_keys(harness.SECRET_KEY)
SIGNER = TokenSigner(
    algorithm="HS256",
    issuer="coatcheck",
    audience="coatcheck",
    secret_keys=KEYS,
    leeway=LEEWAY,
    clock=lambda: NOW,
)
KEY = _derive(KEYS[-1])
KID = jwt.get_unverified_header(SIGNER.sign({}))["kid"]
APP = harness.library_app()
CLIENT = harness.client(APP, use_cookies=False)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def forge(header: bytes, payload: bytes) -> str:
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = hmac.new(KEY, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def verify(token: str) -> None:
    try:
        claims = SIGNER.verify(token)
    except TokenError:
        return
    exp, iat, aud = float(claims["exp"]), float(claims["iat"]), claims["aud"]
    harness.check(claims["iss"] == "coatcheck", "iss", token)
    harness.check(aud == "coatcheck" or (isinstance(aud, list) and "coatcheck" in aud), "aud")
    harness.check(math.isfinite(exp) and exp + LEEWAY > NOW, "exp", token)
    harness.check(math.isfinite(iat) and iat - LEEWAY <= NOW, "iat", token)
    harness.check(bool(claims["sub"]) and bool(claims["jti"]), "sub/jti", token)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    mode, rest = (data[0] % 3, data[1:]) if data else (0, b"")
    if mode == 0:
        verify(rest.decode("utf-8", "surrogateescape"))
    elif mode == 1:
        header, _, payload = rest.partition(b"\0")
        verify(forge(header, payload))
    else:
        value = rest.decode("latin-1")
        for auth in (value, "Bearer " + value):
            response = CLIENT.get("/api/me", environ_overrides={"HTTP_AUTHORIZATION": auth})
            harness.check(response.status_code == 401, "bearer accepted or 5xx", auth)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
