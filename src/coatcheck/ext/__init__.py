"""The Flask layer: the extension, sessions, login, CSRF and error mapping.

Imports go one way: ``context``/``client``/``cookies`` <- ``errors`` <-
``session`` <- ``tokens`` <- ``remember`` <- ``login`` <- ``accounts`` <-
``devices``, with ``extension`` (the composition root) above them all.
"""

from .accounts import (
    authenticate,
    change_password,
    create_user,
    disable_user,
    enable_user,
    register_user,
    set_user_roles,
)
from .csrf import csrf_exempt, csrf_exempt_without_cookies, csrf_token
from .devices import (
    DeviceSession,
    all_sessions,
    iso_time,
    list_sessions,
    revoke_all_sessions,
    revoke_other_sessions,
    revoke_session,
)
from .extension import CoatCheck
from .factors import (
    check_second_factor,
    current_assurance,
    pending_login,
    reauth_required,
    reauthenticate_with_code,
    reauthenticate_with_password,
    recently_authenticated,
    start_login,
)
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
    session_assurance,
    session_user,
)
from .session import ServerSession, current_session
from .tokens import issue_tokens, refresh_tokens, revoke_token, verify_access_token

__all__ = [
    "start_login",
    "recently_authenticated",
    "reauthenticate_with_password",
    "reauthenticate_with_code",
    "reauth_required",
    "pending_login",
    "current_assurance",
    "check_second_factor",
    "ANONYMOUS",
    "AnonymousUser",
    "AuthenticatedUser",
    "CoatCheck",
    "DeviceSession",
    "ServerSession",
    "all_sessions",
    "authenticate",
    "change_password",
    "create_user",
    "csrf_exempt",
    "csrf_exempt_without_cookies",
    "csrf_token",
    "current_session",
    "current_user",
    "disable_user",
    "enable_user",
    "get_current_user",
    "iso_time",
    "issue_tokens",
    "list_sessions",
    "login_required",
    "login_user",
    "logout_user",
    "refresh_tokens",
    "register_user",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
    "revoke_token",
    "roles_required",
    "session_assurance",
    "session_user",
    "set_user_roles",
    "verify_access_token",
]
