"""A user's devices in a request: list them, revoke one, revoke the others."""

from __future__ import annotations

from ..auth.devices import DeviceSession, iso_time
from .accounts import live_on, this_device
from .context import services
from .login import get_current_user
from .session import current_session, request_client

__all__ = [
    "DeviceSession",
    "all_sessions",
    "iso_time",
    "list_sessions",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
]


def _current_handle() -> str | None:
    """Return the handle of what authenticates this request: a session or a token family."""
    user = get_current_user()
    if user.via == "bearer":
        return user.handle
    session = current_session()
    return session.handle if session.record is not None else None


def _user_id(user_id: str | int | None) -> str:
    if user_id is not None:
        return str(user_id)
    current = get_current_user().id
    if current is None:
        raise ValueError("no user given and nobody is logged in")
    return str(current)


def list_sessions(user_id: str | int | None = None) -> list[DeviceSession]:
    """Return the live devices of a user (default: the current one), oldest first."""
    return services().devices.of_user(_user_id(user_id), _current_handle())


def all_sessions(limit: int = 1000) -> list[DeviceSession]:
    """Return up to ``limit`` live devices of all users, most recently seen first."""
    return services().devices.everyone(limit, _current_handle())


def revoke_session(handle: str, *, user_id: str | int | None = None) -> bool:
    """End one device of a user (default: the current one) by its handle.

    Return ``False`` if the user has no device with that handle.
    """
    return services().devices.revoke(_user_id(user_id), handle, client=request_client())


def revoke_other_sessions() -> int:
    """End every device of the current user but this one; return how many."""
    revoked, stamp = services().devices.revoke_others(
        _user_id(None), this_device(), client=request_client()
    )
    live_on(stamp)
    return revoked


def revoke_all_sessions(user_id: str | int) -> int:
    """End every device of a user (an administrator's act); return how many.

    When administrators log themselves out everywhere, this request's session
    ends too.
    """
    revoked = services().devices.revoke_all(user_id, client=request_client())
    if str(get_current_user().id) == str(user_id):
        current_session().destroy_requested = True
    return revoked
