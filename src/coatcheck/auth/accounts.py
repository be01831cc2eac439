"""Accounts: check a password, register, change a password, disable, enable, roles.

Every change that takes privilege away (disable, roles, password, log out
everywhere) follows one order: change the user, move the user's revocation
stamp (:mod:`.stamps`), then delete their records. The device making the
change, if any, lives on under the new stamp.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import InvalidCredentials, Throttled
from ..core.passwords import check_password_policy
from ..users import models as events
from .client import NO_CLIENT, Client

if TYPE_CHECKING:
    from ..users import User
    from .devices import Device
    from .services import Services
    from .throttle import Refusal

#: Usernames longer than this are not looked up (but cost a hash all the same).
MAX_USERNAME = 256


@dataclass(frozen=True)
class Authenticated:
    """A user whose credentials were just checked, and the stamp read before it."""

    user: User
    #: The revocation stamp read before the user: what a login is born under.
    stamp: int


class Accounts:
    """The account operations, over the user store, the session store and the throttle."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def authenticate(
        self, username: str, password: str, client: Client = NO_CLIENT
    ) -> Authenticated:
        """Return the active user with these credentials and the stamp to log in under.

        Raise :class:`Throttled` once this account from this address, the account
        from everywhere, or the address has failed too often, right password or
        not; raise :class:`InvalidCredentials` alike for an unknown user, a wrong
        password and a disabled account, after the same hashing work. A hash
        made with old parameters or another algorithm is replaced on success.

        The user is read again after the stamp: a disable, demotion or password
        change that lands while the password is being hashed either shows in
        that second read or has moved the stamp this login is born under.
        """
        services = self.services
        address = client.ip or ""
        # The user first: when the database cannot be reached, the attempt ends
        # (503) before it takes one of the account's slots.
        found = services.users.get_by_username(username) if len(username) <= MAX_USERNAME else None
        refusal = services.throttle.reserve(username, address)
        if refusal is not None:
            self._refused(refusal, username, client)
        stamp = services.stamps.current(found.id) if found is not None else 0
        if found is None:
            services.hasher.dummy_verify(password)
            valid, new_hash = False, None
        else:
            valid, new_hash = services.hasher.verify(password, found.password_hash)
        user = services.users.get(found.id) if found is not None and valid else None
        if (
            found is None
            or user is None
            or not valid
            or user.disabled
            or not hmac.compare_digest(user.password_hash, found.password_hash)
        ):
            services.throttle.failed(username, address)
            services.audit(
                events.LOGIN_FAILED,
                client=client,
                user_id=found.id if found is not None else None,
                username=username[:MAX_USERNAME],
            )
            raise InvalidCredentials()
        services.throttle.succeeded(username, address)  # right password, whatever fails next
        if new_hash is not None:
            user = services.users.set_password_hash(user.id, new_hash)
        return Authenticated(user, stamp)

    def _refused(self, refusal: Refusal, username: str, client: Client) -> None:
        if refusal.first:  # one audit row per throttled key and window, not per attempt
            self.services.audit(
                events.LOGIN_THROTTLED,
                client=client,
                username=username[:MAX_USERNAME],
                detail={"scope": refusal.scope},
            )
        raise Throttled(refusal.wait)

    def register(
        self, username: str, password: str, *, email: str | None = None, client: Client = NO_CLIENT
    ) -> Authenticated:
        """Create an account for a visitor (throttled per address); return it to log in."""
        refusal = self.services.throttle.reserve_registration(client.ip or "")
        if refusal is not None:
            raise Throttled(refusal.wait, "registrations from this address")
        user = self.create_user(username, password, email=email, client=client)
        return Authenticated(user, self.services.stamps.current(user.id))

    def create_user(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        roles: Iterable[str] = (),
        client: Client = NO_CLIENT,
    ) -> User:
        """Create a user after checking the password policy; audit it."""
        services = self.services
        check_password_policy(password, username=username)
        user = services.users.create_user(
            username, services.hasher.hash(password), email=email, roles=tuple(roles)
        )
        services.audit(events.USER_CREATED, client=client, user_id=user.id, username=user.username)
        return user

    def change_password(
        self,
        username: str,
        current_password: str,
        new_password: str,
        *,
        keep: Device | None = None,
        client: Client = NO_CLIENT,
    ) -> int | None:
        """Change a password after checking the current one (throttled like a login).

        Every session, series and family of the user ends but ``keep``, which
        lives on under the new stamp; return that stamp (``None``: nothing kept).
        """
        services = self.services
        user = self.authenticate(username, current_password, client).user
        check_password_policy(new_password, username=user.username)
        services.users.set_password_hash(user.id, services.hasher.hash(new_password))
        stamp = self._revoke(user.id, keep)
        services.audit(
            events.PASSWORD_CHANGED, client=client, user_id=user.id, username=user.username
        )
        return stamp

    def set_disabled(self, user_id: int, disabled: bool, *, client: Client = NO_CLIENT) -> User:
        """Disable a user (every session, series and family ends) or enable them again."""
        services = self.services
        user = services.users.set_disabled(user_id, disabled)
        if not disabled:
            services.audit(
                events.USER_ENABLED, client=client, user_id=user.id, username=user.username
            )
            return user
        revoked = services.devices.count(user.id)
        self._revoke(user.id, None)
        services.audit(
            events.USER_DISABLED,
            client=client,
            user_id=user.id,
            username=user.username,
            detail={"sessions_revoked": revoked},
        )
        return user

    def set_roles(
        self,
        user_id: int,
        roles: Iterable[str],
        *,
        client: Client = NO_CLIENT,
    ) -> tuple[User, int]:
        """Change a user's roles; their devices carry on with the new roles.

        A login that raced the change is dead at its first use (see
        :meth:`Devices.carry_over`). Return the user and the new stamp.
        """
        services = self.services
        before = services.users.get(user_id)
        user = services.users.set_roles(user_id, roles)
        stamp = services.devices.carry_over(str(user.id), sorted(user.roles))
        services.audit(
            events.ROLES_CHANGED,
            client=client,
            user_id=user.id,
            username=user.username,
            detail={"before": sorted(before.roles) if before else [], "after": sorted(user.roles)},
        )
        return user, stamp

    def _revoke(self, user_id: int | str, keep: Device | None) -> int | None:
        return self.services.devices.revoke_everything(str(user_id), keep=keep)
