"""Second factors in a request: two-step login, enrolment, step-up (SPEC §8).

- :func:`start_login` replaces :func:`~coatcheck.login_user` after a password
  check: a user with a factor gets a *pending* session (no user on it) that
  reaches only the second step; a user the policy
  (``COATCHECK_REQUIRE_SECOND_FACTOR``) wants to have one and who has none gets
  one that reaches only enrolment. Every step gives the session a new ID.
- :func:`complete_login` finishes a pending login once a factor checked out:
  born under the stamp read at the password, with ``aal`` 2, and remember-me
  only now if it was asked for.
- :func:`reauth_required` guards sensitive views: the last password, factor or
  step-up check must be within ``COATCHECK_REAUTH_MAX_AGE``;
  :func:`reauthenticate` renews it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..auth.assurance import Assurance
from ..auth.pending import (
    ENROLMENT,
    ENROLMENT_LIFETIME,
    PENDING,
    SECOND_FACTOR,
    SECOND_FACTOR_LIFETIME,
    PendingLogin,
)
from ..core.errors import (
    InvalidCode,
    InvalidCredentials,
    ReauthenticationRequired,
)
from ..users import models as events
from .context import begin_login, note_login_stamp, services
from .login import (
    UserLike,
    get_current_user,
    login_user,
    refuse_anonymous,
    session_assurance,
)
from .session import current_session, request_client
from .tokens import bearer_family

F = TypeVar("F", bound=Callable[..., Any])


def start_login(
    user: UserLike, remember: bool = False, *, via: str = "password"
) -> PendingLogin | None:
    """Log ``user`` in after their password checked out, or start a pending login.

    Return ``None`` when the user is logged in (no factor needed), else the
    pending login: its ``stage`` says what is missing (``second_factor`` or
    ``enrolment``) and ``allowed`` which methods can finish it.
    """
    found = services()
    methods = found.factors.methods(user.id) if isinstance(user.id, int | str) else []
    if methods:
        stage, lifetime = SECOND_FACTOR, SECOND_FACTOR_LIFETIME
    elif found.settings.require_second_factor and found.settings.requires_second_factor(user.roles):
        stage, lifetime = ENROLMENT, ENROLMENT_LIFETIME
    else:
        login_user(user, remember=remember, via=via)
        return None
    user, stamp = begin_login(user)
    pending = PendingLogin(
        user_id=str(user.id),
        typed_id=user.id if isinstance(user.id, int | str) else str(user.id),
        username=user.username,
        roles=tuple(sorted(set(user.roles))),
        stamp=stamp,
        methods=("pwd",),
        remember=remember,
        stage=stage,
        allowed=tuple(methods),
        until=found.clock() + lifetime,
        via=via,
    )
    session = current_session()
    session.set_meta(PENDING, pending.to_meta())
    session.rotate_requested = True
    session.rotate_fresh = True
    return pending


def pending_login(stage: str | None = None) -> PendingLogin | None:
    """Return the current session's pending login (at ``stage``, if given), or ``None``."""
    pending = PendingLogin.from_meta(current_session().peek_meta(), services().clock())
    if pending is None or (stage is not None and pending.stage != stage):
        return None
    return pending


def require_pending(stage: str) -> PendingLogin:
    """Return the pending login at ``stage``; raise why there is none.

    An expired or missing one is :class:`~coatcheck.core.errors.Unauthenticated`
    (start again from the password).
    """
    pending = pending_login(stage)
    if pending is None:
        refuse_anonymous()
        raise AssertionError("unreachable")  # refuse_anonymous always raises
    return pending


def check_second_factor(method: str, code: str) -> Any:
    """Finish the pending login with a TOTP or recovery code; return the user.

    :raise InvalidCode: for a wrong, replayed or spent code (counted by the throttle).
    """
    pending = require_pending(SECOND_FACTOR)
    if method not in pending.allowed:
        services().factors.failed(
            int(pending.user_id), pending.username, method, client=request_client()
        )
    amr = services().factors.check(
        int(pending.user_id), pending.username, method, code, client=request_client()
    )
    return complete_login(pending, amr)


def complete_login(pending: PendingLogin, amr: str) -> Any:
    """Finish ``pending`` now that a factor adding ``amr`` checked out; return the user.

    The login is born under the stamp read when the password was checked: a
    revocation since then wins. A user disabled since is refused.
    """
    found = services()
    user = found.load_user(pending.user_id)
    if user is None or getattr(user, "disabled", False):
        clear_pending()
        raise InvalidCredentials()
    note_login_stamp(user.id, pending.stamp)
    clear_pending()
    login_user(user, remember=pending.remember, via=pending.via, methods=(*pending.methods, amr))
    return user


def clear_pending() -> None:
    """Forget the current session's pending login."""
    session = current_session()
    if PENDING in session.peek_meta():
        session.set_meta(PENDING, None)


def factor_owner() -> tuple[int, str]:
    """Return the ID and username of whose factors the request may manage.

    The logged-in user, or the user of a pending login at the enrolment stage
    (the policy sent them to enrol). Anyone else is refused.
    """
    user = get_current_user()
    if user.is_authenticated:
        if not isinstance(user.id, int) and not str(user.id).isdigit():
            raise InvalidCode()  # an application's own users have no factors here
        return int(str(user.id)), str(user.username)
    pending = pending_login(ENROLMENT)
    if pending is None:
        refuse_anonymous()
        raise AssertionError("unreachable")
    return int(pending.user_id), pending.username


def finish_enrolment(amr: str) -> bool:
    """Complete a login waiting at enrolment, now that a factor adding ``amr`` was
    proved; return whether there was one."""
    pending = pending_login(ENROLMENT)
    if pending is None:
        return False
    complete_login(pending, amr)
    return True


#: The session meta key of recovery codes waiting to be shown once on the next page.
_SHOW_CODES = "show_recovery_codes"


def stash_recovery_codes(codes: list[str] | None) -> None:
    """Keep new recovery codes for the next page to show once (a browser flow)."""
    if codes:
        current_session().set_meta(_SHOW_CODES, codes)


def pop_recovery_codes() -> list[str] | None:
    """Return recovery codes stashed for showing, and forget them."""
    session = current_session()
    codes = session.peek_meta().get(_SHOW_CODES)
    if codes:
        session.set_meta(_SHOW_CODES, None)
        return [str(c) for c in codes]
    return None


def current_assurance() -> Assurance:
    """Return the assurance of the current request's login (session or bearer token)."""
    if get_current_user().via == "bearer":
        family = bearer_family()
        if family is not None:
            return Assurance.from_meta(family.meta, family.created_at)
    return session_assurance()


def recently_authenticated() -> bool:
    """Tell whether the last password, factor or step-up check is within
    ``COATCHECK_REAUTH_MAX_AGE``."""
    found = services()
    age = found.clock() - current_assurance().authenticated_at
    return age <= found.settings.reauth_max_age


def require_recent_authentication() -> None:
    """Refuse (401 ``reauthentication_required``) unless :func:`recently_authenticated`.

    Anyone not logged in is refused as :func:`~coatcheck.login_required` does.
    """
    if not get_current_user().is_authenticated:
        refuse_anonymous()
    if not recently_authenticated():
        raise ReauthenticationRequired()


def reauth_required(view: F) -> F:
    """Let only users who proved who they are within ``COATCHECK_REAUTH_MAX_AGE`` reach
    ``view`` ("sudo mode"; Flask-Login's ``fresh_login_required``).

    Others get 401 ``reauthentication_required`` (API clients) or a redirect to
    ``COATCHECK_REAUTH_URL`` with ``next`` (browsers).
    """

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        require_recent_authentication()
        return view(*args, **kwargs)

    return cast(F, wrapped)


def reauthenticate(method: str) -> None:
    """Record a step-up by ``method`` (an ``amr`` value) on the current session.

    ``authenticated_at`` becomes now and the session gets a new ID.
    """
    user = get_current_user()
    session = current_session()
    assurance = session_assurance().renewed((method,), services().clock())
    for name, value in assurance.to_meta().items():
        session.set_meta(name, value)
    session.rotate_requested = True
    services().audit(
        events.STEP_UP,
        client=request_client(),
        user_id=user.id,
        username=user.username,
        detail={"method": method},
    )


def reauthenticate_with_password(password: str) -> None:
    """Step up with the user's password (throttled like a login)."""
    user = get_current_user()
    if not user.is_authenticated or user.username is None:
        refuse_anonymous()
    services().accounts.authenticate(str(user.username), password, request_client())
    reauthenticate("pwd")


def reauthenticate_with_code(method: str, code: str) -> None:
    """Step up with a TOTP or recovery code of the user (throttled like a login)."""
    user = get_current_user()
    if not user.is_authenticated or user.username is None:
        refuse_anonymous()
    amr = services().factors.check(
        int(str(user.id)), str(user.username), method, code, client=request_client()
    )
    reauthenticate(amr)


__all__ = [
    "check_second_factor",
    "clear_pending",
    "complete_login",
    "current_assurance",
    "factor_owner",
    "pop_recovery_codes",
    "stash_recovery_codes",
    "finish_enrolment",
    "pending_login",
    "reauth_required",
    "reauthenticate",
    "reauthenticate_with_code",
    "reauthenticate_with_password",
    "recently_authenticated",
    "require_pending",
    "require_recent_authentication",
    "start_login",
]
