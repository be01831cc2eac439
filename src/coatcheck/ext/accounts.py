"""Accounts in a request: check a password, register, change a password, disable, roles.

Thin wrappers over :mod:`coatcheck.auth.accounts` that add the request's
client, the device making the change, and what the change does to this
request's own session.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..auth.devices import Device
from ..auth.sessions import SERIES_KEY
from ..auth.stamps import STAMP
from ..core.errors import InvalidCredentials
from .context import note_login_stamp, services
from .login import get_current_user, session_assurance
from .session import current_session, request_client
from .tokens import bearer_family

if TYPE_CHECKING:
    from ..users import User


def authenticate(username: str, password: str) -> User:
    """Return the active user with these credentials.

    Raise :class:`~coatcheck.Throttled` once the account from this address, the
    account from everywhere, or the address has failed too often, right
    password or not; raise :class:`~coatcheck.InvalidCredentials` alike for an
    unknown user, a wrong password and a disabled account. A login that follows
    in this request is born under the revocation stamp read during the check.
    """
    checked = services().accounts.authenticate(username, password, request_client())
    note_login_stamp(checked.user.id, checked.stamp)
    return checked.user


def register_user(username: str, password: str, *, email: str | None = None) -> User:
    """Create an account for a visitor (throttled per client address)."""
    created = services().accounts.register(username, password, email=email, client=request_client())
    note_login_stamp(created.user.id, created.stamp)
    return created.user


def create_user(
    username: str, password: str, *, email: str | None = None, roles: Iterable[str] = ()
) -> User:
    """Create a user after checking the password policy; audit it."""
    return services().accounts.create_user(
        username, password, email=email, roles=roles, client=request_client()
    )


def this_device() -> Device:
    """Return the device the current request acts from."""
    user = get_current_user()
    if user.via == "bearer":
        family = bearer_family()
        return Device(family_key=family.key if family is not None else None)
    session = current_session()
    series = session.peek_meta().get(SERIES_KEY)
    return Device(
        session_key=session.record.key if session.record is not None else None,
        series_key=series if isinstance(series, str) else None,
    )


def live_on(stamp: int | None) -> None:
    """Let this request's session live on under ``stamp``, under a new ID.

    ``None``: the device was not kept (its user was disabled meanwhile): the
    session ends.
    """
    session = current_session()
    if session.user_id is None or get_current_user().via != "session":
        return
    if stamp is None:
        session.destroy_requested = True
        return
    session.set_meta(STAMP, stamp)
    session.rotate_requested = True


def change_password(current_password: str, new_password: str) -> None:
    """Change the logged-in user's password.

    The current password is checked (throttled like a login), the new one
    against the policy; then every other session, series and token family of
    the user ends and this one gets a new ID.
    """
    user = get_current_user()
    if user.username is None:
        raise InvalidCredentials()
    stamp = services().accounts.change_password(
        user.username,
        current_password,
        new_password,
        keep=this_device(),
        client=request_client(),
    )
    live_on(stamp)
    if stamp is not None and user.via == "session":
        # The current password was just checked: a step-up, as POST /api/reauth is.
        renewed = session_assurance().renewed(("pwd",), services().clock())
        session = current_session()
        for name, value in renewed.to_meta().items():
            session.set_meta(name, value)


def disable_user(user_id: int) -> None:
    """Disable a user: no more logins, and every session, series and family ends."""
    services().accounts.set_disabled(user_id, True, client=request_client())


def enable_user(user_id: int) -> None:
    """Let a disabled user log in again."""
    services().accounts.set_disabled(user_id, False, client=request_client())


def set_user_roles(user_id: int, roles: Iterable[str]) -> User:
    """Change a user's roles, in the user store and in every live session of theirs.

    A login that raced the change is dead at its first use. When users change
    their own roles, their session also gets a new ID (a change of privilege).
    """
    own = str(get_current_user().id) == str(user_id)
    user, stamp = services().accounts.set_roles(user_id, roles, client=request_client())
    if own:
        current_session().set_meta("roles", sorted(user.roles))
        live_on(stamp)
    return user
