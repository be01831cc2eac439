"""The remember-me cookie of a request: read it, set it, clear it.

The protocol (series, rotation, theft) is :mod:`coatcheck.auth.remember`;
logging in from the cookie is :func:`coatcheck.ext.login.get_current_user`'s.
"""

from __future__ import annotations

from flask import request

from ..auth.assurance import Assurance
from ..auth.remember import Issued
from .context import services
from .cookies import cookie_name, queue_cookie, single_cookie
from .session import request_client


def remember_cookie_name() -> str:
    """Return the name of the remember-me cookie."""
    return cookie_name(services().settings, "remember")


def remember_cookie() -> str | None:
    """Return the request's remember-me cookie (``None`` if absent or sent twice)."""
    return single_cookie(remember_cookie_name())


def sent_remember_cookie() -> bool:
    """Tell whether the request carried any remember-me cookie, valid or not."""
    return remember_cookie_name() in request.cookies


def set_remember_cookie(value: str, max_age: int) -> None:
    """Queue the remember-me cookie for this response."""
    queue_cookie(remember_cookie_name(), value, max_age=max(0, max_age))


def clear_remember_cookie() -> None:
    """Queue the deletion of the remember-me cookie, if the request sent one."""
    if sent_remember_cookie():
        queue_cookie(remember_cookie_name(), None)


def issue(user_id: str, stamp: int, assurance: Assurance | None = None) -> str:
    """Start a remember-me series for ``user_id``, queue its cookie; return its store key."""
    issued: Issued = services().remember.issue(user_id, stamp, request_client(), assurance)
    set_remember_cookie(issued.cookie, issued.max_age)
    return issued.key


def forget() -> None:
    """End the series of this request's cookie (and the sessions it logged in); clear it."""
    cookie = remember_cookie()
    if cookie is not None:
        services().remember.forget(cookie)
    clear_remember_cookie()
