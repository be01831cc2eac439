"""API tokens in a request: the bearer token's family, and the token operations.

The protocol (families, rotation, reuse detection, revocation) is
:mod:`coatcheck.auth.tokens`; this module only reads the request.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g

from ..auth.assurance import Assurance
from ..core.errors import TokenError
from ..core.records import SessionRecord
from .client import bearer_token
from .context import begin_login, services
from .cookies import vary_on
from .session import request_client

_BEARER = "_coatcheck_bearer"


def issue_tokens(user: Any, *, methods: tuple[str, ...] = ("pwd",)) -> dict[str, Any]:
    """Start a token family (a device) for ``user``; return its first pair.

    The family is born under the stamp read when ``user``'s password was
    checked in this request (see :func:`coatcheck.authenticate`), or else now.
    ``methods`` are the authentication methods just checked, as for
    :func:`coatcheck.login_user`; its access tokens carry them (``amr``).
    """
    user, stamp = begin_login(user)
    assurance = Assurance.of(methods, services().clock())
    return services().tokens.issue(user, stamp, request_client(), assurance)


def refresh_tokens(refresh_token: str) -> dict[str, Any]:
    """Spend a refresh token; return a new pair of the same family."""
    return services().tokens.refresh(refresh_token, request_client())


def revoke_token(token: str) -> None:
    """Revoke a refresh token (its whole family) or an access token (its ID)."""
    services().tokens.revoke(token, request_client())


def verify_access_token(token: str) -> tuple[dict[str, Any], SessionRecord]:
    """Return the claims and the family record of a valid, unrevoked access token."""
    return services().tokens.verify(token)


def bearer_family() -> SessionRecord | None:
    """Return the family record of the request's valid bearer token (once per request)."""
    if _BEARER not in g:
        token = bearer_token()
        family = None
        if token is not None:
            try:
                _, family = services().tokens.verify(token)
            except TokenError:
                family = None
        setattr(g, _BEARER, family)
    found: SessionRecord | None = g.get(_BEARER)
    return found


def mark_bearer_response(response: Response) -> Response:
    """Keep responses to bearer-authenticated requests out of caches (after-request hook)."""
    if g.get(_BEARER) is not None:
        response.headers["Cache-Control"] = "no-store"
        vary_on(response, "Authorization")
    return response
