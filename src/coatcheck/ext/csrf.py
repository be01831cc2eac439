"""CSRF protection for every unsafe request, rejected in one place.

The secret is bound to the session once a user is logged in (kept in the
session record), and for anonymous clients lives in a signed double-submit
cookie, so that login and register forms are protected without a store record
per visitor. Tokens are masked per render. Provenance is checked too:
``Sec-Fetch-Site: cross-site`` and a foreign ``Origin`` are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, g, request

from ..core import csrf
from ..core.errors import CSRFError
from .context import services
from .cookies import cookie_name, queue_cookie, single_cookie
from .session import SESSION_ENVIRON_KEY, ServerSession, current_session

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_FIELD = "csrf_token"  # noqa: S105 - a field name
HEADER = "X-CSRF-Token"
_SECRET = "_coatcheck_csrf"  # noqa: S105 - a key in flask.g
#: A double-submit cookie older than this no longer verifies (seconds).
COOKIE_MAX_AGE = 7 * 24 * 3600


def csrf_exempt(view: F) -> F:
    """Exempt ``view`` from CSRF protection. Rarely right: say why where you use it."""
    view._coatcheck_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def csrf_exempt_without_cookies(view: F) -> F:
    """Exempt ``view`` from CSRF protection when the request carries no cookie.

    For endpoints that set no cookie and change nothing a cookie grants, such
    as token revocation: a request with cookies is still checked.
    """
    view._coatcheck_csrf_cookieless = True  # type: ignore[attr-defined]
    return view


def csrf_token() -> str:
    """Return a CSRF token for the current client (a new-looking one each call)."""
    return csrf.mask(_secret(create=True) or "")


def protect() -> None:
    """Refuse an unsafe request that fails the CSRF checks (a before-request hook)."""
    if request.method not in UNSAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "_coatcheck_csrf_exempt", False):
        return
    if _bearer_only():
        return
    if getattr(view, "_coatcheck_csrf_cookieless", False) and "Cookie" not in request.headers:
        return
    settings = services().settings
    reason = csrf.origin_failure(
        sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
        origin=request.headers.get("Origin"),
        own_origin=f"{request.scheme}://{request.host}",
        trusted_origins=settings.csrf_trusted_origins,
        also_trusted=services().origin_trusted,
    )
    if reason is not None:
        raise CSRFError(reason)
    token = request.headers.get(HEADER) or _form_token()
    if not token:
        raise CSRFError(csrf.REASON_NO_TOKEN)
    secret = _secret(create=False)
    if secret is None:
        raise CSRFError(csrf.REASON_NO_SECRET)
    if not csrf.matches(token, secret):
        raise CSRFError(csrf.REASON_BAD_TOKEN)


def _bearer_only() -> bool:
    auth = request.headers.get("Authorization", "")
    return auth[:7].lower() == "bearer " and "Cookie" not in request.headers


def _form_token() -> str | None:
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    value = request.form.get(FORM_FIELD)
    return value if isinstance(value, str) else None


def _secret(*, create: bool) -> str | None:
    cached: str | None = g.get(_SECRET)
    if cached is not None:
        return cached
    state = services()
    session = current_session()
    secret: str | None
    if session.user_id is not None:
        secret = _valid(session.meta.get("csrf"))
        if secret is None and create:
            secret = csrf.new_secret()
            session.set_meta("csrf", secret)
    else:
        name = cookie_name(state.settings, "csrf")
        signed = single_cookie(name)
        secret = None
        if signed is not None and len(signed) < 512:
            secret = _valid(state.csrf_signer.verify(signed, max_age=COOKIE_MAX_AGE))
        if secret is None and create:
            secret = csrf.new_secret()
            queue_cookie(name, state.csrf_signer.sign(secret))
    if secret is not None:
        g.setdefault(_SECRET, secret)
    return secret


def _valid(secret: object) -> str | None:
    # Whatever verified but is not a secret (only a SECRET_KEY holder could
    # sign one) counts as no secret, and a new one is made when needed.
    return secret if isinstance(secret, str) and csrf.is_secret(secret) else None


def announce_new_token(response: Response) -> None:
    """Hand out the new token when this request changed the session's CSRF secret.

    A login (password, remember-me cookie) makes a new secret, so a token from
    before stops working; the answer carries a fresh one in ``X-CSRF-Token``,
    sparing a single-page app the round trip to fetch one (an after-request hook).
    """
    current = request.environ.get(SESSION_ENVIRON_KEY)
    if (
        isinstance(current, ServerSession)
        and current.user_id is not None
        and "csrf" in current.changed_meta
    ):
        response.headers[HEADER] = csrf_token()
