"""The Flask layer: the extension, sessions, login, CSRF and error mapping."""

from .auth import authenticate, change_password, create_user, disable_user
from .csrf import csrf_exempt, csrf_token
from .extension import CoatCheck, current_session
from .login import (
    ANONYMOUS,
    AnonymousUser,
    AuthenticatedUser,
    current_user,
    login_required,
    login_user,
    logout_user,
    roles_required,
)
from .session import ServerSession

__all__ = [
    "ANONYMOUS",
    "AnonymousUser",
    "AuthenticatedUser",
    "CoatCheck",
    "ServerSession",
    "authenticate",
    "change_password",
    "create_user",
    "csrf_exempt",
    "disable_user",
    "csrf_token",
    "current_session",
    "current_user",
    "login_required",
    "login_user",
    "logout_user",
    "roles_required",
]
