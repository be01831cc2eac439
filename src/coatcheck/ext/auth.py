"""Accounts: check a password (throttled, no enumeration), register, change password."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import InvalidCredentials, Throttled
from ..core.passwords import check_password_policy
from ..users import models as events
from .client import client_address
from .extension import CoatCheck, current_session
from .login import current_user

if TYPE_CHECKING:
    from ..users import User

#: Usernames longer than this are not looked up (but cost a hash all the same).
_MAX_USERNAME = 256


def authenticate(username: str, password: str) -> User:
    """Return the active user with these credentials.

    Raise :class:`Throttled` once the account or the client address has failed
    too often, right password or not; raise :class:`InvalidCredentials`
    alike for an unknown user, a wrong password and a disabled account, after
    the same amount of hashing work. A hash made with old parameters or
    another algorithm is replaced on success.
    """
    state = CoatCheck.state()
    address = client_address()
    # The user first: when the database cannot be reached, the attempt ends
    # (503) before it takes one of the account's slots, which only a success
    # gives back; an outage must not lock every account that tried meanwhile.
    user = state.users.get_by_username(username) if len(username) <= _MAX_USERNAME else None
    wait = state.throttle.reserve(username, address)
    if wait is not None:
        state.audit(events.LOGIN_THROTTLED, username=username[:_MAX_USERNAME])
        raise Throttled(wait)
    if user is None:
        state.hasher.dummy_verify(password)
        valid, new_hash = False, None
    else:
        valid, new_hash = state.hasher.verify(password, user.password_hash)
    if user is None or not valid or user.disabled:
        state.throttle.failed(username, address)
        state.audit(
            events.LOGIN_FAILED,
            user_id=user.id if user is not None else None,
            username=username[:_MAX_USERNAME],
        )
        raise InvalidCredentials()
    state.throttle.succeeded(username)  # the password is right, whatever fails next
    if new_hash is not None:
        user = state.users.set_password_hash(user.id, new_hash)
    return user


def create_user(
    username: str, password: str, *, email: str | None = None, roles: tuple[str, ...] = ()
) -> User:
    """Create a user after checking the password policy; audit it."""
    state = CoatCheck.state()
    check_password_policy(password, username=username)
    user = state.users.create_user(username, state.hasher.hash(password), email=email, roles=roles)
    state.audit(events.USER_CREATED, user_id=user.id, username=user.username)
    return user


def change_password(current_password: str, new_password: str) -> None:
    """Change the logged-in user's password.

    The current password is checked (throttled like a login), the new one
    against the policy; then every other session of the user ends and this
    one gets a new ID.
    """
    state = CoatCheck.state()
    if current_user.username is None:
        raise InvalidCredentials()
    user = authenticate(current_user.username, current_password)
    check_password_policy(new_password, username=user.username)
    state.users.set_password_hash(user.id, state.hasher.hash(new_password))
    from .devices import current_device_keys

    keep = current_device_keys()  # the device making the change stays logged in
    if current_user.via == "session":
        current_session().rotate_requested = True
    for record in state.store.list_by_user(str(user.id)):
        if record.key not in keep:
            state.store.delete(record.key)
    state.audit(events.PASSWORD_CHANGED, user_id=user.id, username=user.username)


def disable_user(user_id: int) -> None:
    """Disable a user: no more logins, and every session and remember-me series ends."""
    state = CoatCheck.state()
    user = state.users.set_disabled(user_id, True)
    revoked = state.store.delete_by_user(str(user_id))
    state.audit(
        events.USER_DISABLED,
        user_id=user.id,
        username=user.username,
        detail={"sessions_revoked": revoked},
    )
