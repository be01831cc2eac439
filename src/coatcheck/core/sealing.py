"""Secrets the server must read back (TOTP seeds) sealed at rest with AES-GCM.

The key is derived from ``SECRET_KEY`` for one purpose; every fallback key
opens what it sealed, so keys rotate as they do for signing. A database dump
alone does not give away the seeds.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1."


class Sealer:
    """Seal and open values for one purpose, under keys derived from the signing keys.

    :param keys: oldest first, the newest (which seals) last, as
        :func:`~coatcheck.core.signing.signing_keys` returns them.
    """

    def __init__(self, keys: Sequence[bytes], purpose: str) -> None:
        self._keys = [
            hashlib.sha256(b"coatcheck-seal\0" + purpose.encode() + b"\0" + key).digest()
            for key in reversed(keys)
        ]
        self._purpose = purpose.encode()

    def seal(self, plain: bytes) -> str:
        """Return ``plain`` encrypted and authenticated under the newest key, as text."""
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._keys[0]).encrypt(nonce, plain, self._purpose)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> bytes | None:
        """Return what :meth:`seal` sealed, or ``None`` when no key opens it."""
        if not sealed.startswith(_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
        except ValueError:
            return None
        for key in self._keys:
            try:
                return AESGCM(key).decrypt(raw[:12], raw[12:], self._purpose)
            except (InvalidTag, ValueError):
                continue
        return None
