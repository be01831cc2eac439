"""Who is on the other end: the client's address, user agent and bearer token."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

from ..auth.access import parse_address
from ..users.models import USER_AGENT_MAX

#: The WSGI environ key set when the request came from a trusted proxy.
TRUSTED_PROXY_KEY = "coatcheck.trusted_proxy"
#: Set when a trusted proxy's X-Forwarded-For has fewer addresses than the hops trusted.
CLIENT_UNKNOWN_KEY = "coatcheck.client_unknown"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Believe ``X-Forwarded-*`` (ProxyFix) only from a peer in ``networks``.

    With no networks, every peer is believed (``COATCHECK_TRUSTED_PROXIES`` as a
    bare number of hops). A believed request is marked with
    :data:`TRUSTED_PROXY_KEY`, which forward auth asks before it reads the
    original URL.
    """

    def __init__(self, app: Any, hops: int, networks: Iterable[Network] = ()) -> None:
        self.app = app
        self.hops = hops
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)
        self.networks = tuple(networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.networks or peer_in(environ.get("REMOTE_ADDR"), self.networks):
            environ[TRUSTED_PROXY_KEY] = True
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
            if sum(1 for part in forwarded.split(",") if part.strip()) < self.hops:
                # ProxyFix then keeps a proxy's own address as the client's.
                environ[CLIENT_UNKNOWN_KEY] = True
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def peer_in(address: str | None, networks: Iterable[Network]) -> bool:
    """Tell whether ``address`` (an IP address as text) is in one of ``networks``."""
    ip = parse_address(address)
    return ip is not None and any(ip in network for network in networks)


def proven_client_address() -> str | None:
    """Return the client's address when the proxies in front say which it is: ``None``
    when a trusted proxy's X-Forwarded-For has fewer addresses than the hops trusted (the
    address would be a proxy's own). Access rules' ``networks`` decide on this."""
    if request.environ.get(CLIENT_UNKNOWN_KEY):
        return None
    return request.remote_addr or None


def from_trusted_proxy() -> bool:
    """Tell whether this request came from a proxy ``COATCHECK_TRUSTED_PROXIES`` believes."""
    return bool(request.environ.get(TRUSTED_PROXY_KEY))


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
