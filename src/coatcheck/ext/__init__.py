"""The Flask layer: the extension, sessions, login, CSRF and error mapping."""

from .auth import authenticate, change_password, create_user, disable_user
from .csrf import csrf_exempt, csrf_exempt_without_cookies, csrf_token
from .devices import (
    DeviceSession,
    all_sessions,
    iso_time,
    list_sessions,
    revoke_all_sessions,
    revoke_other_sessions,
    revoke_session,
    set_user_roles,
)
from .extension import CoatCheck, current_session
from .login import (
    ANONYMOUS,
    AnonymousUser,
    AuthenticatedUser,
    current_user,
    get_current_user,
    login_required,
    login_user,
    logout_user,
    roles_required,
    session_user,
)
from .session import ServerSession
from .tokens import issue_tokens, refresh_tokens, revoke_token, verify_access_token

__all__ = [
    "all_sessions",
    "iso_time",
    "list_sessions",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "set_user_roles",
    "ANONYMOUS",
    "AnonymousUser",
    "AuthenticatedUser",
    "CoatCheck",
    "DeviceSession",
    "ServerSession",
    "authenticate",
    "change_password",
    "create_user",
    "csrf_exempt",
    "csrf_exempt_without_cookies",
    "issue_tokens",
    "refresh_tokens",
    "revoke_token",
    "verify_access_token",
    "disable_user",
    "csrf_token",
    "current_session",
    "current_user",
    "get_current_user",
    "login_required",
    "login_user",
    "logout_user",
    "roles_required",
    "session_user",
]
