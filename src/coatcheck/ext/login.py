"""Login: ``current_user``, ``login_user``, ``logout_user`` and the decorators.

Who is logged in is kept in the session record (user id, username, roles), so
an authenticated request costs one store read and no SQL query. Whatever
changes a user (disable, roles, password) updates or ends their sessions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from flask import g, has_request_context
from werkzeug.local import LocalProxy

from ..core import csrf
from ..users import models as events
from .extension import CoatCheck, current_session
from .tokens import bearer_family, bearer_token

F = TypeVar("F", bound=Callable[..., Any])
_USER = "_coatcheck_user"


class UserLike(Protocol):
    """What :func:`login_user` needs of a user object."""

    @property
    def id(self) -> Any: ...

    @property
    def username(self) -> str: ...

    @property
    def roles(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class AuthenticatedUser:
    """The user a request is authenticated as."""

    id: str
    username: str
    roles: tuple[str, ...]
    #: How the request proved it: ``session`` (cookie) or ``bearer`` (access token).
    via: str = "session"
    #: The public handle of the session or token family.
    handle: str | None = None
    is_authenticated = True
    is_anonymous = False

    def has_role(self, role: str) -> bool:
        """Tell whether the user has ``role``."""
        return role in self.roles


@dataclass(frozen=True)
class AnonymousUser:
    """Nobody: the request is not authenticated."""

    id: None = None
    username: None = None
    roles: tuple[str, ...] = ()
    via: None = None
    handle: None = None
    is_authenticated = False
    is_anonymous = True

    def has_role(self, role: str) -> bool:
        """Return ``False``: nobody has no roles."""
        return False


ANONYMOUS = AnonymousUser()
User = AuthenticatedUser | AnonymousUser


def get_current_user() -> User:
    """Return the user of the current request (what :data:`current_user` proxies).

    Cheaper than going through the proxy for every attribute: call it once.
    """
    if not has_request_context():
        return ANONYMOUS
    user: User | None = g.get(_USER)
    if user is not None:
        return user
    user = session_user()
    if not user.is_authenticated and bearer_token() is None:
        from .remember import login_from_remember_cookie

        user = login_from_remember_cookie() or ANONYMOUS
    setattr(g, _USER, user)
    return user


def session_user() -> User:
    """Return who the current session is logged in as, never logging in by cookie.

    Unlike :data:`current_user`, a remember-me cookie is not used: for checks
    that must not create sessions, such as forward auth for a reverse proxy.
    """
    user: User | None = g.get(_USER)
    if user is not None:
        return user
    if bearer_token() is not None:
        # A request with a bearer token is judged by the token alone.
        family = bearer_family()
        if family is None or family.user_id is None:
            return ANONYMOUS
        return _user_from(family.user_id, family.meta, via="bearer", handle=family.handle)
    session = current_session()
    if session.user_id is None:
        return ANONYMOUS
    meta = session.peek_meta()
    return _user_from(session.user_id, meta, via="session", handle=session.handle)


def _user_from(
    user_id: str, meta: Mapping[str, Any], *, via: str, handle: str
) -> AuthenticatedUser:
    return AuthenticatedUser(
        id=user_id,
        username=str(meta.get("username", "")),
        roles=tuple(meta.get("roles", ())),
        via=via,
        handle=handle,
    )


#: The user of the current request: an :class:`AuthenticatedUser` or :data:`ANONYMOUS`.
current_user: User = cast(User, LocalProxy(get_current_user))


def login_user(user: UserLike, remember: bool = False, *, via: str = "password") -> None:
    """Log ``user`` in: a new session ID (fixation-proof), a new CSRF secret.

    With ``remember=True`` a remember-me cookie is issued too, and the session
    cookie gets a Max-Age.
    """
    cc = CoatCheck.state()
    session = current_session()
    session.user_id = str(user.id)
    session.set_meta("username", user.username)
    session.set_meta("roles", sorted(set(user.roles)))
    session.set_meta("csrf", csrf.new_secret())
    session.set_meta("auth_at", cc.clock())
    session.rotate_requested = True
    session.rotate_fresh = True
    g.pop("_coatcheck_csrf", None)
    g.pop(_USER, None)
    if remember:
        from .remember import REMEMBER_KEY, issue_remember_cookie

        session.permanent = True
        session.set_meta(REMEMBER_KEY, issue_remember_cookie(session.user_id))
    cc.audit(
        events.LOGIN_SUCCEEDED,
        user_id=session.user_id,
        username=user.username,
        detail={"via": via, "remember": remember},
    )


def logout_user() -> None:
    """End the current session: delete its record, clear its cookies."""
    from .remember import forget_remember_cookie

    cc = CoatCheck.state()
    user = current_user
    if user.is_authenticated:
        cc.audit(events.LOGOUT, user_id=user.id, username=user.username)
    if user.via == "bearer" and user.handle is not None:
        from .tokens import revoke_family

        revoke_family(user.handle)  # a bearer client ends its token family
    forget_remember_cookie()
    session = current_session()
    session.destroy_requested = True
    session.user_id = None
    g.pop("_coatcheck_csrf", None)
    g.pop(_USER, None)
    g.setdefault(_USER, ANONYMOUS)


def login_required(view: F) -> F:
    """Let only authenticated requests reach ``view``.

    Others get 401 ``unauthenticated`` (API clients) or a redirect to
    ``COATCHECK_LOGIN_URL`` with ``next`` (browsers).
    """

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from ..core.errors import Unauthenticated

        if not get_current_user().is_authenticated:
            raise Unauthenticated()
        return view(*args, **kwargs)

    return cast(F, wrapped)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Let only users holding every one of ``roles`` reach the view (else 403)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            from ..core.errors import Forbidden, Unauthenticated

            user = get_current_user()
            if not user.is_authenticated:
                raise Unauthenticated()
            if not all(user.has_role(role) for role in roles):
                raise Forbidden()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator
