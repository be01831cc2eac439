"""The rules stored values follow: usernames, emails, roles, hashes, audit text.

Everything here is a plain function without database access, so the web
layer can check a form before it asks the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ..core.errors import CoatcheckError, InvalidUsername
from .models import USER_AGENT_MAX

#: Largest ID an ``integer`` column holds in PostgreSQL; larger IDs cannot exist.
MAX_ID = 2**31 - 1
#: Largest page :meth:`UserStore.list_users` and :meth:`UserStore.list_events` return.
MAX_PAGE = 1000

# ASCII only, on purpose: Unicode usernames invite look-alikes ("аdmin" with a
# Cyrillic "а") and casefolding surprises. Names are compared case-insensitively.
_USERNAME = re.compile(r"[A-Za-z0-9._-]{3,64}")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_ROLE = re.compile(r"[a-z0-9_-]{1,32}")
_EMAIL_MAX = 254
_EVENT_MAX = 64
_AUDIT_USERNAME_MAX = 256
_IP_MAX = 64
_HANDLE_MAX = 64
# Keys of ``detail`` whose values are never written to the audit log.
_SECRET_DETAIL_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "password_hash",
        "token",
        "access_token",
        "refresh_token",
        "remember_token",
        "csrf_token",
        "session_id",
        "sid",
        "secret",
    }
)
_REDACTED = "[redacted]"


class InvalidEmail(CoatcheckError):
    """An email address that is too long or not of the form ``local@domain``."""


def username_key(username: str) -> str:
    """Return the form of ``username`` that is unique: its casefolded text."""
    return username.casefold()


def is_valid_id(user_id: object) -> bool:
    """Return whether ``user_id`` could name a stored row (1 to :data:`MAX_ID`)."""
    return isinstance(user_id, int) and not isinstance(user_id, bool) and 1 <= user_id <= MAX_ID


def is_valid_username(username: object) -> bool:
    """Return whether ``username`` follows the rules of :func:`validate_username`."""
    return isinstance(username, str) and _USERNAME.fullmatch(username) is not None


def validate_username(username: str) -> str:
    """Return ``username`` unchanged if it follows the rules.

    :raise InvalidUsername: unless it is 3 to 64 ASCII letters, digits,
        ``.``, ``_`` or ``-``.
    """
    if not is_valid_username(username):
        raise InvalidUsername(
            "a username is 3 to 64 characters long and uses only ASCII letters,"
            " digits, '.', '_' and '-'"
        )
    return username


def validate_email(email: str | None) -> str | None:
    """Return ``email`` unchanged if it is ``None`` or looks like an address.

    Only the shape is checked (one ``@`` with text on both sides, no spaces or
    control characters, at most 254 characters); whether it receives mail is
    for a confirmation message to find out. An empty string is not ``None``:
    it is refused.

    :raise InvalidEmail: otherwise.
    """
    if email is None:
        return None
    if (
        not isinstance(email, str)
        or len(email) > _EMAIL_MAX
        or not _EMAIL.fullmatch(email)
        or not _encodable(email)
    ):
        raise InvalidEmail(
            "an email address has one '@' with text on both sides, no spaces,"
            f" and at most {_EMAIL_MAX} characters"
        )
    return email


def normalize_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Return ``roles`` deduplicated and sorted.

    :raise ValueError: if a role is not 1 to 32 characters of ``a-z``,
        ``0-9``, ``_`` and ``-``.
    :raise TypeError: if ``roles`` is a single string rather than a collection.
    """
    if isinstance(roles, str):
        raise TypeError("roles must be a collection of strings, not one string")
    unique = set(roles)
    for role in unique:
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise ValueError(
                f"invalid role {role!r}: use 1 to 32 characters of a-z, 0-9, '_' and '-'"
            )
    return tuple(sorted(unique))


def check_password_hash(password_hash: str) -> str:
    """Return ``password_hash`` if it is an encoded hash (``$…``).

    Every hash we accept (Argon2, bcrypt) has this form; refusing anything
    else keeps a plaintext password from being stored by mistake.

    :raise ValueError: otherwise.
    """
    if not isinstance(password_hash, str) or not password_hash.startswith("$"):
        raise ValueError("password_hash must be an encoded hash such as '$argon2id$…'")
    return password_hash


def check_event_name(event: str) -> str:
    """Return ``event`` if it is 1 to 64 characters.

    :raise ValueError: otherwise.
    """
    if not isinstance(event, str) or not 1 <= len(event) <= _EVENT_MAX:
        raise ValueError(f"an event name is 1 to {_EVENT_MAX} characters")
    return event


def check_page(offset: int, limit: int) -> None:
    """Refuse a negative offset, or a limit outside 0 to :data:`MAX_PAGE`.

    :raise ValueError: for such a page.
    """
    if offset < 0 or not 0 <= limit <= MAX_PAGE:
        raise ValueError(f"offset must be >= 0 and limit between 0 and {MAX_PAGE}")


def clean_audit_fields(
    username: str | None, ip: str | None, user_agent: str | None, session_handle: str | None
) -> dict[str, str | None]:
    """Return client-supplied audit fields cut to size and storable anywhere."""
    return {
        "username": _clean_text(username, _AUDIT_USERNAME_MAX),
        "ip": _clean_text(ip, _IP_MAX),
        "user_agent": _clean_text(user_agent, USER_AGENT_MAX),
        "session_handle": _clean_text(session_handle, _HANDLE_MAX),
    }


def clean_detail(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return a JSON-only copy of ``detail`` with secret-named values redacted.

    :raise TypeError: if ``detail`` does not serialise to JSON.
    """
    if detail is None:
        return None
    cleaned = {
        str(key): _REDACTED if str(key).lower() in _SECRET_DETAIL_KEYS else value
        for key, value in detail.items()
    }
    try:
        copied: dict[str, Any] = json.loads(json.dumps(cleaned, allow_nan=False))
    except ValueError as exc:
        raise TypeError(f"audit detail must be plain JSON: {exc}") from exc
    return copied


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text(value: str | None, limit: int) -> str | None:
    # PostgreSQL refuses NUL characters and lone surrogates cannot be encoded:
    # neither may turn a logged failure into an error.
    if value is None:
        return None
    value = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return value[:limit]
