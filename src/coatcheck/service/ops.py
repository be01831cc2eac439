"""Operations: forward auth for reverse proxies, liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, jsonify

from ..core.errors import StoreUnavailable
from ..ext import CoatCheck, session_user
from ..ext.errors import error_response

blueprint = Blueprint("ops", __name__)


@blueprint.get("/auth/verify")
def verify() -> Response:
    """Answer nginx ``auth_request`` / Traefik ForwardAuth: 200 with who, or 401."""
    # No login from a remember-me cookie here: the proxy would drop the new cookies.
    user = session_user()
    if not user.is_authenticated:
        return error_response(401, "unauthenticated", "Log in to see this.")
    response = Response(status=200)
    response.headers["X-Auth-User"] = user.username or ""
    response.headers["X-Auth-User-Id"] = str(user.id) if user.id is not None else ""
    response.headers["X-Auth-Roles"] = ",".join(user.roles)
    return response


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    """Publish the public keys of access tokens (EdDSA or RS256; none for HS256)."""
    keys = CoatCheck.state().token_signer.jwks()
    if not keys["keys"]:
        return error_response(404, "not_found", "Tokens are signed with a secret key (HS256).")
    response = jsonify(keys)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    state = CoatCheck.state()
    checks: dict[str, str] = {}
    probes: dict[str, Callable[[], None]] = {
        "sessions": state.store.ping,
        # ``state.users`` opens the user store at a worker's first use: inside the try.
        "users": lambda: state.users.ping(),
    }
    for name, ping in probes.items():
        try:
            ping()
            checks[name] = "ok"
        except StoreUnavailable:
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
