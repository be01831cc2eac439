"""Login: ``current_user``, ``login_user``, ``logout_user`` and the decorators.

Who is logged in is kept in the session record (user id, username, roles, and
the revocation stamp it was born under), so an authenticated request costs one
store read for the session and one for the stamp, both cached, and no SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from flask import current_app, g, has_request_context, request
from werkzeug.local import LocalProxy

from ..auth.assurance import Assurance
from ..auth.pending import SECOND_FACTOR, PendingLogin
from ..auth.sessions import SERIES_KEY, USER_ID
from ..auth.stamps import STAMP
from ..core import csrf
from ..core.errors import (
    EmailVerificationRequired,
    EnrolmentRequired,
    Forbidden,
    SecondFactorRequired,
    Unauthenticated,
)
from ..core.useragent import describe_user_agent
from ..users import models as events
from . import remember as remember_cookie
from .client import bearer_token
from .context import begin_login, services
from .session import current_session, request_client
from .tokens import bearer_family

F = TypeVar("F", bound=Callable[..., Any])
_USER = "_coatcheck_user"
_LOADED = "_coatcheck_loaded_users"
_CSRF = "_coatcheck_csrf"


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
    """The user a request is authenticated as.

    ``id``, ``username`` and ``roles`` come from the session (or token family)
    and cost nothing. Any other attribute is the application's own user
    object's — what the user loader returns (by default, coatcheck's user
    store) — loaded once per request, on first use: ``current_user.email``
    works as with Flask-Login, and :attr:`user` is that object itself.
    """

    #: The user's ID, of the type it had at login (an ``int`` for the built-in store).
    id: Any
    username: str
    roles: tuple[str, ...]
    #: How the request proved it: ``session`` (cookie) or ``bearer`` (access token).
    via: str = "session"
    #: The public handle of the session or token family.
    handle: str | None = None
    is_authenticated = True
    is_anonymous = False
    is_active = True

    def has_role(self, role: str) -> bool:
        """Tell whether the user has ``role``."""
        return role in self.roles

    def get_id(self) -> str:
        """Return the ID as text (Flask-Login's name for it)."""
        return str(self.id)

    @property
    def user(self) -> Any:
        """Return the application's user object (the user loader's), once per request."""
        cache: dict[str, Any] = g.setdefault(_LOADED, {})
        key = str(self.id)
        if key not in cache:
            cache[key] = services().load_user(key)
        return cache[key]

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class lacks: the application's own fields.
        if name.startswith("_") or not has_request_context():
            raise AttributeError(name)
        loaded = self.user
        if loaded is None:
            raise AttributeError(name)
        return getattr(loaded, name)


@dataclass(frozen=True)
class AnonymousUser:
    """Nobody: the request is not authenticated."""

    id: None = None
    username: None = None
    roles: tuple[str, ...] = ()
    via: None = None
    handle: None = None
    user: None = None
    is_authenticated = False
    is_anonymous = True
    is_active = False

    def get_id(self) -> None:
        """Return ``None``: nobody has no ID."""
        return None

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
        user = _login_from_remember_cookie() or ANONYMOUS
    setattr(g, _USER, user)
    return user


def session_assurance() -> Assurance:
    """Return how the current session's login was made (its ``aal``, ``amr``, ``authenticated_at``).

    Read from the session itself, so a login made in this request counts
    before its record is written.
    """
    session = current_session()
    record = session.record
    born = record.created_at if record is not None else services().clock()
    return Assurance.from_meta(session.peek_meta(), born)


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
    typed = meta.get(USER_ID)
    return AuthenticatedUser(
        id=typed if typed is not None and str(typed) == user_id else user_id,
        username=str(meta.get("username", "")),
        roles=tuple(meta.get("roles", ())),
        via=via,
        handle=handle,
    )


#: The user of the current request: an :class:`AuthenticatedUser` or :data:`ANONYMOUS`.
current_user: User = cast(User, LocalProxy(get_current_user))


def login_user(
    user: UserLike,
    remember: bool = False,
    *,
    via: str = "password",
    methods: tuple[str, ...] = ("pwd",),
) -> None:
    """Log ``user`` in: a new session ID (fixation-proof), a new CSRF secret.

    The session is born under the user's revocation stamp as it was when their
    credentials were checked in this request, so a revocation racing the login
    wins. It records the assurance of the login: ``methods`` are the
    authentication methods just checked (``"pwd"``, ``"otp"``, ``"recovery"``,
    ``"webauthn"``, ``"passkey"``), which give ``aal`` 1 or 2. With
    ``remember=True`` a remember-me cookie is issued too, restoring this
    assurance when it logs in, and the session cookie gets a Max-Age.
    """
    user, stamp = begin_login(user)
    user_id = str(user.id)
    assurance = Assurance.of(methods, services().clock())
    session = _establish(user, stamp, assurance)
    if remember:
        session.permanent = True
        session.set_meta(SERIES_KEY, remember_cookie.issue(user_id, stamp, assurance))
    client = request_client()
    found = services()
    found.audit(
        events.LOGIN_SUCCEEDED,
        client=client,
        user_id=user_id,
        username=user.username,
        detail={"via": via, "remember": remember},
    )
    if found.uses_user_store and isinstance(user.id, int) and client.user_agent:
        found.account_mail.note_login_device(
            user.id, describe_user_agent(client.user_agent), client=client
        )


def _establish(user: UserLike, stamp: int, assurance: Assurance) -> Any:
    """Make the current session ``user``'s, born under ``stamp``, under a new ID.

    The session records ``assurance``: how sure this login is, and when.
    """
    session = current_session()
    session.user_id = str(user.id)
    session.set_meta(USER_ID, user.id if isinstance(user.id, int | str) else str(user.id))
    session.set_meta("username", user.username)
    session.set_meta("roles", sorted(set(user.roles)))
    # What /api/me shows of the address, with no SQL (kept up to date by a confirmation).
    session.set_meta("email", getattr(user, "email", None))
    session.set_meta("email_verified", bool(getattr(user, "email_verified", False)))
    session.set_meta("csrf", csrf.new_secret())
    for name, value in assurance.to_meta().items():
        session.set_meta(name, value)
    session.set_meta(STAMP, stamp)
    session.rotate_requested = True
    session.rotate_fresh = True
    g.pop(_CSRF, None)
    g.pop(_USER, None)
    g.setdefault(_LOADED, {})[str(user.id)] = user
    return session


def _login_from_remember_cookie() -> AuthenticatedUser | None:
    """Log in from the request's remember-me cookie; return the user, or ``None``."""
    cookie = remember_cookie.remember_cookie()
    if cookie is None:
        if remember_cookie.sent_remember_cookie():
            remember_cookie.clear_remember_cookie()  # sent twice: stop sending it
        return None
    found = services()
    remembered = found.remember.use(cookie, request_client())
    if remembered is None:
        remember_cookie.clear_remember_cookie()  # invalid, expired, revoked or stolen
        return None
    remember_cookie.set_remember_cookie(remembered.cookie, remembered.max_age)
    session = current_session()
    if remembered.replayed:
        # The first use's session, never one of its own (it dies with the victim's).
        record = found.sessions.load(remembered.session_id)
        if record is None or record.user_id != remembered.user_id:
            return None
        session.adopt(record, remembered.session_id)
        session.permanent = True
        user = session_user()
        return user if isinstance(user, AuthenticatedUser) else None
    user = found.load_user(remembered.user_id)  # after the stamp: a racing revocation wins
    if (
        user is None
        or getattr(user, "disabled", False)
        # Remembered at aal 1, before a second factor was added or required: a
        # cookie must not skip it (flask-security #229). Log in again, with it.
        or (remembered.assurance.aal < 2 and found.factors.wanted(user.id, user.roles))
    ):
        found.remember.forget(None, key=remembered.key)
        remember_cookie.clear_remember_cookie()
        return None
    _establish(user, remembered.stamp, remembered.assurance)
    session.next_id = remembered.session_id
    session.permanent = True
    session.set_meta(SERIES_KEY, remembered.key)
    found.audit(
        events.LOGIN_SUCCEEDED,
        client=request_client(),
        user_id=remembered.user_id,
        username=user.username,
        detail={"via": "remember", "remember": True},
    )
    restored = session_user()  # built from the new session, like any other request's user
    return restored if isinstance(restored, AuthenticatedUser) else None


def logout_user() -> None:
    """End the current session: delete its record, clear its cookies.

    The remember-me series of the device ends too, with every session it
    logged in; a bearer client ends its token family.
    """
    found = services()
    user = get_current_user()
    if user.is_authenticated:
        found.audit(events.LOGOUT, client=request_client(), user_id=user.id, username=user.username)
    family = bearer_family() if user.via == "bearer" else None
    if family is not None:
        found.tokens.end(family.key)
    session = current_session()
    series = session.peek_meta().get(SERIES_KEY)
    if isinstance(series, str):
        found.remember.forget(None, key=series)
    remember_cookie.forget()
    session.destroy_requested = True
    session.user_id = None
    g.pop(_CSRF, None)
    g.pop(_USER, None)
    g.setdefault(_USER, ANONYMOUS)


def refuse_anonymous() -> None:
    """Raise why the current request is not logged in.

    A pending login (SPEC §8) reaches nothing but its next step: it gets
    :class:`SecondFactorRequired` or :class:`EnrolmentRequired` (both 401);
    anyone else :class:`Unauthenticated`.
    """
    if bearer_token() is None:
        pending = PendingLogin.from_meta(current_session().peek_meta(), services().clock())
        if pending is not None:
            raise SecondFactorRequired() if pending.stage == SECOND_FACTOR else EnrolmentRequired()
    raise Unauthenticated()


def allow_unverified_email(view: F) -> F:
    """Let users whose address is not verified reach ``view`` even under
    ``COATCHECK_REQUIRE_VERIFIED_EMAIL`` (the verification pages, ``/api/me``)."""
    view._coatcheck_unverified_ok = True  # type: ignore[attr-defined]
    return view


def require_verified_email() -> None:
    """Under ``COATCHECK_REQUIRE_VERIFIED_EMAIL``, refuse a logged-in user whose address
    is not verified (403 ``email_verification_required``), unless the view allows it.

    Free for verified users (the session says so); an unverified one is read again,
    since the link may have been opened in another browser.
    """
    found = services()
    if not found.settings.require_verified_email or get_current_user().via != "session":
        return
    session = current_session()
    if session.peek_meta().get("email_verified"):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "_coatcheck_unverified_ok", False):
        return
    stored = found.load_user(str(session.user_id))
    if getattr(stored, "email_verified", False):
        session.set_meta("email", stored.email)
        session.set_meta("email_verified", True)
        return
    raise EmailVerificationRequired()


def login_required(view: F) -> F:
    """Let only authenticated requests reach ``view``.

    Others get what the application's :meth:`CoatCheck.unauthorized_handler`
    returns, or by default 401 ``unauthenticated`` (API clients) or a redirect
    to ``COATCHECK_LOGIN_URL`` with ``next`` (browsers).
    """

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not get_current_user().is_authenticated:
            refuse_anonymous()
        require_verified_email()
        return view(*args, **kwargs)

    return cast(F, wrapped)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Let only users holding every one of ``roles`` reach the view (else 403)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = get_current_user()
            if not user.is_authenticated:
                refuse_anonymous()
            require_verified_email()
            if not all(user.has_role(role) for role in roles):
                raise Forbidden()
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator
