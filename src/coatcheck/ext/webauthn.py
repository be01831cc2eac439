"""WebAuthn ceremonies in a request (SPEC §8): registration, passkey login,
second factor and step-up.

Each ceremony is two requests: the options (with a challenge) and the
browser's answer. Between them the :class:`~coatcheck.auth.webauthn.Ceremony`
lives in the session's meta under :data:`CEREMONY` (which keeps even an
anonymous session stored), and the answer takes it away, whatever the
outcome: a challenge is used once. One ceremony at a time per session: a new
one replaces the one before.

The relying party is ``COATCHECK_PUBLIC_URL``'s origin, else (development)
the request's own.
"""

from __future__ import annotations

from typing import Any

from flask import request

from ..auth.pending import SECOND_FACTOR as PENDING_SECOND_FACTOR
from ..auth.webauthn import (
    LOGIN,
    REAUTH,
    REGISTER,
    SECOND_FACTOR,
    Ceremony,
    MalformedCredential,
    RelyingParty,
)
from ..core.errors import InvalidCode
from ..users import models as events
from ..users.models import Factor
from .context import services
from .factors import (
    clear_pending,
    factor_owner,
    finish_enrolment,
    require_pending,
    require_recent_authentication,
    stash_recovery_codes,
)
from .login import get_current_user, login_user, refuse_anonymous
from .session import current_session, request_client

#: The session meta key of the ceremony under way.
CEREMONY = "webauthn"
#: What a WebAuthn second factor or step-up adds to ``amr``.
WEBAUTHN_AMR = "webauthn"


def relying_party() -> RelyingParty:
    """Return the relying party: ``COATCHECK_PUBLIC_URL``, else this request's origin."""
    public = services().settings.public_url
    return RelyingParty.from_origin(public or request.host_url)


def _start(ceremony: Ceremony) -> None:
    current_session().set_meta(CEREMONY, ceremony.to_meta())


def _take(purpose: str) -> Ceremony:
    """Return the session's ceremony for ``purpose`` and forget it (it is used once).

    :raise InvalidCode: if there is none, or it is for something else, or expired.
    """
    session = current_session()
    raw = session.peek_meta().get(CEREMONY)
    if raw is not None:
        session.set_meta(CEREMONY, None)
    ceremony = Ceremony.from_meta(raw)
    if ceremony is None:
        raise InvalidCode()
    ceremony.check(purpose, services().clock())
    return ceremony


def _logged_in_step_up() -> None:
    """A logged-in user adds credentials only in sudo mode; an enrolling one needs none."""
    if get_current_user().is_authenticated:
        require_recent_authentication()


# -- registration -----------------------------------------------------------


def begin_registration(name: str | None, passkey: bool) -> dict[str, Any]:
    """Return the creation options for a new credential of the current user.

    Allowed to a logged-in user who authenticated recently, and to a login
    waiting at enrolment.

    :raise ValueError: for an unusable name.
    """
    user_id, username = factor_owner()
    _logged_in_step_up()
    options, ceremony = services().webauthn.begin_registration(
        relying_party(), user_id, username, name, passkey=passkey
    )
    _start(ceremony)
    return options  # type: ignore[no-any-return]


def finish_registration(credential: object) -> tuple[Factor, list[str] | None]:
    """Check the browser's new credential and keep it; return it and, for the
    user's first factor, their recovery codes (also stashed for the next page).

    A login waiting at enrolment completes now.

    :raise MalformedCredential: if ``credential`` is not a registration response.
    :raise InvalidCode: if it does not verify.
    """
    user_id, _ = factor_owner()
    _logged_in_step_up()
    ceremony = _take(REGISTER)
    if ceremony.user_id != user_id:
        raise InvalidCode()
    factor, codes = services().webauthn.finish_registration(
        relying_party(), ceremony, credential, client=request_client()
    )
    finish_enrolment(WEBAUTHN_AMR)
    stash_recovery_codes(codes)
    return factor, codes


# -- assertions ---------------------------------------------------------------


def begin_assertion(purpose: str, username: str | None = None) -> dict[str, Any]:
    """Return the request options of an assertion for ``purpose``.

    - ``login``: a passkey login, by anyone (``username`` optional, and a known
      and an unknown one answer alike);
    - ``second_factor``: the login pending at its second step;
    - ``reauth``: the logged-in user's step-up.
    """
    found = services()
    if purpose == LOGIN:
        options, ceremony = found.webauthn.begin_assertion(
            relying_party(), LOGIN, username=username or ""
        )
    elif purpose in (SECOND_FACTOR, REAUTH):
        user_id = _asserting_user(purpose)
        options, ceremony = found.webauthn.begin_assertion(
            relying_party(), purpose, user_id=user_id
        )
    else:
        raise ValueError(f"no WebAuthn assertion for {purpose!r}")
    _start(ceremony)
    return options  # type: ignore[no-any-return]


def _asserting_user(purpose: str) -> int:
    """Return whose credential a second factor or step-up asks for."""
    if purpose == SECOND_FACTOR:
        return int(require_pending(PENDING_SECOND_FACTOR).user_id)
    user = get_current_user()
    if not user.is_authenticated:
        refuse_anonymous()
    if not str(user.id).isdigit():
        raise InvalidCode()  # an application's own users have no credentials here
    return int(str(user.id))


def verify_assertion(purpose: str, credential: object, user_id: int) -> Factor:
    """Check the browser's answer for a second factor or step-up of ``user_id``;
    return the credential used. The caller completes the login or the step-up.

    :raise MalformedCredential: if ``credential`` is not an assertion.
    :raise Throttled: when the account failed too often from this address.
    :raise InvalidCode: if it does not verify, is not the user's, or the
        ceremony is missing, expired or for another purpose.
    """
    if purpose not in (SECOND_FACTOR, REAUTH):
        raise ValueError(f"verify_assertion is for second_factor or reauth, not {purpose!r}")
    ceremony = _take(purpose)
    if ceremony.user_id != user_id:
        raise InvalidCode()
    factor: Factor = services().webauthn.verify_assertion(
        relying_party(), ceremony, credential, client=request_client()
    )
    return factor


def passkey_login(credential: object) -> Any:
    """Log in with a passkey alone (``amr`` ``["passkey"]``, ``aal`` 2); return the user.

    :raise MalformedCredential: if ``credential`` is not an assertion.
    :raise Throttled: when the account failed too often from this address.
    :raise InvalidCode: if it does not verify, is no passkey, or its user is
        gone or disabled.
    """
    ceremony = _take(LOGIN)
    found = services()
    client = request_client()
    factor: Factor = found.webauthn.verify_assertion(
        relying_party(), ceremony, credential, client=client
    )
    user = found.load_user(str(factor.user_id))
    if user is None or getattr(user, "disabled", False):
        raise InvalidCode()
    clear_pending()  # a password login half done on this session gives way
    login_user(user, via="passkey", methods=("passkey",))
    found.audit(
        events.PASSKEY_LOGIN,
        client=request_client(),
        user_id=factor.user_id,
        username=user.username,
        detail={"factor_id": factor.id, "name": factor.name},
    )
    return user


__all__ = [
    "CEREMONY",
    "MalformedCredential",
    "begin_assertion",
    "begin_registration",
    "finish_registration",
    "passkey_login",
    "relying_party",
    "verify_assertion",
]
