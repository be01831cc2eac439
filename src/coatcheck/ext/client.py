"""Who is on the other end: the client's address, user agent and bearer token."""

from __future__ import annotations

from flask import request

from ..users.models import USER_AGENT_MAX


def client_address() -> str:
    """Return the client's address (from X-Forwarded-For only when proxies are trusted)."""
    return request.remote_addr or ""


def client_user_agent() -> str:
    """Return the client's user agent, cut to what the audit log keeps."""
    return request.user_agent.string[:USER_AGENT_MAX]


def client_meta() -> dict[str, str]:
    """Return the client facts kept with a session: address and user agent."""
    return {"ip": client_address(), "user_agent": client_user_agent()}


def bearer_token() -> str | None:
    """Return the request's bearer token, or ``None``."""
    scheme, _, token = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
