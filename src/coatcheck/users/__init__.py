"""Users and the audit log, kept with SQLAlchemy 2 in SQLite or PostgreSQL.

Nothing in this package imports Flask: the web layer maps its errors
(:class:`~coatcheck.core.errors.StoreUnavailable` to 503, and so on).
"""

from __future__ import annotations

from .models import (
    ALL_SESSIONS_REVOKED,
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    LOGIN_THROTTLED,
    LOGOUT,
    PASSWORD_CHANGED,
    REMEMBER_THEFT,
    ROLES_CHANGED,
    SESSION_REVOKED,
    TOKEN_REUSE,
    USER_CREATED,
    USER_DISABLED,
    AuditEvent,
    User,
)
from .store import UnknownUser, UserStore
from .validation import (
    MAX_ID,
    MAX_PAGE,
    InvalidEmail,
    is_valid_id,
    is_valid_username,
    normalize_roles,
    username_key,
    validate_email,
    validate_username,
)

__all__ = [
    "ALL_SESSIONS_REVOKED",
    "LOGIN_FAILED",
    "LOGIN_SUCCEEDED",
    "LOGIN_THROTTLED",
    "LOGOUT",
    "MAX_ID",
    "MAX_PAGE",
    "PASSWORD_CHANGED",
    "REMEMBER_THEFT",
    "ROLES_CHANGED",
    "SESSION_REVOKED",
    "TOKEN_REUSE",
    "USER_CREATED",
    "USER_DISABLED",
    "AuditEvent",
    "InvalidEmail",
    "UnknownUser",
    "User",
    "UserStore",
    "is_valid_id",
    "is_valid_username",
    "normalize_roles",
    "username_key",
    "validate_email",
    "validate_username",
]
