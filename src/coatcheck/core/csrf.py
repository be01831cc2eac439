"""CSRF tokens: session-bound secrets, masked per render (BREACH-safe).

A secret is 32 random bytes. A token shown to the client is a fresh random pad
followed by the pad XOR the secret, so every render looks different while
all of them unmask to the same secret.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Callable, Iterable

SECRET_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

REASON_NO_TOKEN = "no_token"  # noqa: S105 - a reason code, not a secret
REASON_BAD_TOKEN = "bad_token"  # noqa: S105
REASON_NO_SECRET = "no_secret"  # noqa: S105
REASON_CROSS_SITE = "cross_site"
REASON_BAD_ORIGIN = "bad_origin"

#: What each failure reason tells the client. Never echoes what was sent, and
#: names no route: the application knows where its tokens come from.
MESSAGES = {
    REASON_NO_TOKEN: "The CSRF token is missing: send it as form field csrf_token "
    "or header X-CSRF-Token.",
    REASON_BAD_TOKEN: "The CSRF token is invalid or belongs to another session "
    "(logging in or out changes it); get a fresh one.",
    REASON_NO_SECRET: "There is no CSRF cookie or session to check the token against; "
    "get a token first, and keep the cookie it comes with.",
    REASON_CROSS_SITE: "Cross-site requests may not change anything here.",
    REASON_BAD_ORIGIN: "The request's Origin is not this application's.",
}


def new_secret() -> str:
    """Return a new CSRF secret as URL-safe text."""
    return _encode(secrets.token_bytes(SECRET_BYTES))


def is_secret(value: object) -> bool:
    """Tell whether ``value`` is a CSRF secret of the form :func:`new_secret` makes."""
    if not isinstance(value, str):
        return False
    raw = _decode(value)
    return raw is not None and len(raw) == SECRET_BYTES


def mask(secret: str) -> str:
    """Return a new token for ``secret``: random pad + (pad XOR secret)."""
    raw = _decode(secret)
    if raw is None or len(raw) != SECRET_BYTES:
        raise ValueError("not a CSRF secret")
    pad = secrets.token_bytes(len(raw))
    return _encode(pad + bytes(a ^ b for a, b in zip(pad, raw, strict=True)))


def matches(token: str, secret: str) -> bool:
    """Tell, in constant time, whether ``token`` was made from ``secret``."""
    raw_secret = _decode(secret)
    raw_token = _decode(token) if len(token) <= 2 * len(secret) + 4 else None
    if raw_secret is None or raw_token is None or len(raw_secret) != SECRET_BYTES:
        return False
    if len(raw_token) != 2 * len(raw_secret):
        return False
    pad, masked = raw_token[: len(raw_secret)], raw_token[len(raw_secret) :]
    unmasked = bytes(a ^ b for a, b in zip(pad, masked, strict=True))
    return hmac.compare_digest(unmasked, raw_secret)


def origin_failure(
    *,
    sec_fetch_site: str | None,
    origin: str | None,
    own_origin: str,
    trusted_origins: Iterable[str] = (),
    also_trusted: Callable[[str], bool] | None = None,
) -> str | None:
    """Return why an unsafe request's provenance is refused, or ``None``.

    ``Sec-Fetch-Site: cross-site`` is refused; so is an ``Origin`` that is not
    the application's own or a trusted one (``null`` included). A request with
    neither header (a non-browser client) passes this check. ``also_trusted``
    is asked about an origin that is neither (lower-cased, without a final ``/``).
    """
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site":
        return REASON_CROSS_SITE
    if origin is not None:
        allowed = {_origin_key(o) for o in (own_origin, *trusted_origins)}
        key = _origin_key(origin)
        if key is None or (key not in allowed and (also_trusted is None or not also_trusted(key))):
            return REASON_BAD_ORIGIN
    return None


def _origin_key(origin: str) -> str | None:
    # Origins are ASCII (RFC 6454). Lower-casing anything else could make a
    # foreign origin equal ours: "\u212a" (KELVIN SIGN) lower-cases to "k".
    value = origin.strip(" \t").rstrip("/")
    return value.lower() if value.isascii() else None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    # Only the one form _encode makes: the lenient decoder would also take
    # padding, characters outside the alphabet and stray low bits in the last
    # character, so that an altered token could still match.
    if _BASE64URL.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return raw if _encode(raw) == text else None
