"""Operations: forward auth for reverse proxies, liveness and readiness."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Blueprint, Response, jsonify

from ..core.errors import StoreUnavailable
from ..ext import CoatCheck, session_user
from ..ext.errors import error_response

blueprint = Blueprint("ops", __name__)

#: ``/readyz`` answers within this many seconds, whatever the store and database do.
READY_SECONDS = 0.9


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
    """Answer 200 when the session store and the user database answer, else 503.

    Both are asked at once, and the answer comes within :data:`READY_SECONDS`
    whatever they do: a check still waiting then counts as unavailable (the
    store's own timeouts end it soon after).
    """
    state = CoatCheck.state()
    probes: dict[str, Callable[[], None]] = {
        "sessions": state.store.ping,
        # ``state.users`` opens the user store at a worker's first use: inside the probe.
        "users": lambda: state.users.ping(),
    }
    deadline = time.monotonic() + READY_SECONDS
    checks = {name: "unavailable" for name in probes}
    done = {name: threading.Event() for name in probes}

    def probe(name: str) -> None:
        try:
            probes[name]()
            checks[name] = "ok"
        except StoreUnavailable:
            pass
        finally:
            done[name].set()

    threading.Thread(target=probe, args=("users",), daemon=True).start()
    probe("sessions")
    done["users"].wait(max(0.0, deadline - time.monotonic()))
    found = dict(checks)  # a late answer does not change this one
    ready = all(v == "ok" for v in found.values())
    response = jsonify(status="ready" if ready else "unavailable", checks=found)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
