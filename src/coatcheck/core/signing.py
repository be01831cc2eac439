"""Signing with key rotation: ``SECRET_KEY`` signs, every fallback verifies."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from .clock import Clock, system_clock
from .errors import ConfigurationError

#: Shortest SECRET_KEY accepted (characters).
MIN_SECRET_KEY_LENGTH = 16
# What URLSafeTimedSerializer makes: [.]payload.timestamp.signature in base64url
# (the leading dot marks a compressed payload).
_SIGNED = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)")


def signing_keys(
    secret_key: str | bytes | None, fallbacks: Sequence[str | bytes] = ()
) -> list[bytes]:
    """Return the keys for itsdangerous: oldest first, the signing key last."""
    if not secret_key:
        raise ConfigurationError(
            "SECRET_KEY is required: coatcheck signs its CSRF and remember-me cookies with it"
        )
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            f"SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    keys = [*reversed(list(fallbacks)), secret_key]
    return [k.encode("utf-8") if isinstance(k, str) else k for k in keys]


class _ClockedSigner(TimestampSigner):
    """A :class:`~itsdangerous.TimestampSigner` that reads the injected clock.

    Both the timestamp a value is signed with and the age checked against
    ``max_age`` come from :meth:`get_timestamp`, so both follow the clock.
    """

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        """Return the clock's current time in whole seconds."""
        return int(self._clock())


class CookieSigner:
    """Sign and verify cookie values for one purpose, with an age limit.

    Signing times and ages are read from ``clock``, so a test moves time
    forward instead of sleeping.
    """

    def __init__(self, keys: list[bytes], purpose: str, *, clock: Clock = system_clock) -> None:
        self._serializer = URLSafeTimedSerializer(
            keys,
            salt=f"coatcheck.{purpose}",
            signer=_ClockedSigner,
            signer_kwargs={"clock": clock},
        )

    def sign(self, value: str) -> str:
        """Return ``value`` signed with the current key."""
        return str(self._serializer.dumps(value))

    def verify(self, signed: str, max_age: int) -> str | None:
        """Return the value if the signature holds under any key and is fresh.

        Only the exact text :meth:`sign` makes is accepted. itsdangerous alone
        would also take a signature with padding or other characters added,
        or with other low bits in its last character.
        """
        match = _SIGNED.fullmatch(signed)
        if match is None or not _is_canonical(match.group(1)):
            return None
        try:
            value = self._serializer.loads(signed, max_age=max_age)
        except (BadData, UnicodeError, ValueError):
            return None
        return value if isinstance(value, str) else None


def _is_canonical(segment: str) -> bool:
    try:
        return base64_encode(base64_decode(segment)) == segment.encode("ascii")
    except BadData:
        return False
