"""Session IDs, their store keys and their public handles.

The session ID is the only secret: it lives in the cookie and nowhere else.
The store sees only its SHA-256 (the key), and pages and APIs see only the
handle, a separate random value with no relation to the ID.
"""

from __future__ import annotations

import hashlib
import re
import secrets

#: Bytes of randomness in a session ID (256 bits).
SESSION_ID_BYTES = 32

# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_HANDLE_RE = re.compile(r"[0-9a-f]{32}")


def new_session_id() -> str:
    """Return a new random session ID (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: str) -> bool:
    """Tell whether ``value`` has the exact shape of a session ID."""
    return _SESSION_ID_RE.fullmatch(value) is not None


def store_key(secret: str, purpose: str = "session") -> str:
    """Return the store key for a secret ID: its SHA-256 in hex.

    The ID has 256 bits of entropy, so a plain hash is enough: a leaked store
    gives no ID to replay. Other kinds of record (``purpose="remember"``) hash
    with their purpose in front, so an ID of one kind can never address a
    record of another.
    """
    data = secret if purpose == "session" else f"{purpose}\0{secret}"
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def hash_token(token: str) -> str:
    """Return the SHA-256 (hex) under which a random token is kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_handle() -> str:
    """Return a new public session handle (32 random hex characters)."""
    return secrets.token_hex(16)


def is_handle(value: str) -> bool:
    """Tell whether ``value`` has the exact shape of a session handle."""
    return _HANDLE_RE.fullmatch(value) is not None
