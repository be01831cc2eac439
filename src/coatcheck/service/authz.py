"""Forward auth for reverse proxies, the Authelia way (SPEC §10).

``GET /api/authz/auth-request`` answers nginx's ``auth_request`` (the original
request in ``X-Original-Method`` and ``X-Original-URL``) and
``GET /api/authz/forward-auth`` answers Caddy's ``forward_auth`` and Traefik's
``forwardAuth`` (in ``X-Forwarded-Method``, ``-Proto``, ``-Host`` and
``-URI``). Those headers are read only from a proxy ``COATCHECK_TRUSTED_PROXIES``
believes. The access rules (:mod:`coatcheck.auth.access`) decide; the user
comes from the session, as on any authenticated request: one store read, no
SQL, no write.

This module also holds the portal's one rule for ``rd``: where a login may
send the browser back to (:func:`follow`).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from ..auth.access import (
    ALLOW,
    FORBIDDEN,
    LOGIN,
    AccessRules,
    Target,
    Who,
    host_under,
    parse_target,
)
from ..auth.assurance import Assurance
from ..core.errors import ConfigurationError
from ..core.redirects import is_safe_next
from ..ext import CoatCheck, csrf_exempt, current_session, session_user
from ..ext.client import from_trusted_proxy, proven_client_address
from ..ext.errors import browser_page_load
from ..ext.login import session_assurance
from ..ext.tokens import bearer_family

log = logging.getLogger("coatcheck")
blueprint = Blueprint("authz", __name__)

#: Where the parsed rules live in ``app.extensions``.
RULES_KEY = "coatcheck.access"
#: The config key of the ``[access_control]`` table.
ACCESS_KEY = "COATCHECK_ACCESS_CONTROL"
#: Every method a proxy may ask with (nginx's subrequest keeps the original one).
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_JOINED_URLS = re.compile(r",\s*https?://", re.IGNORECASE)
#: Browsers never send a fragment; an upstream that keeps "#..." in its path could read
#: /public/#/../admin as /admin while the rules saw /public/.
FRAGMENT = "the original URL holds a fragment (#), which no browser sends"
#: The identity headers of an allowed request.
IDENTITY_HEADERS = ("Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name")


def install(app: Flask) -> None:
    """Parse the access rules (errors now, at start), and trust the protected sites
    as CSRF origins as far as the rules go."""
    rules = AccessRules.parse(app.config.get(ACCESS_KEY))
    for warning in rules.warnings:
        log.warning("coatcheck: %s", warning)
    app.extensions[RULES_KEY] = rules
    app.jinja_env.globals["asked_by"] = asked_by  # "app.example.com asked you to log in"
    settings = CoatCheck.state(app).settings
    if settings.cookie_domain:
        CoatCheck.state(app).origin_trusted = lambda origin: _protected_origin(
            rules, settings.cookie_domain, origin
        )
    app.register_blueprint(blueprint)


def access_rules(app: Flask | None = None) -> AccessRules:
    """Return the application's access rules."""
    found = (app or current_app).extensions.get(RULES_KEY)
    if found is None:
        raise ConfigurationError("the access rules are not installed (service.authz.install)")
    return found  # type: ignore[no-any-return]


@blueprint.route("/api/authz/auth-request", methods=METHODS, provide_automatic_options=False)
@csrf_exempt  # nothing changes here; the proxy asks with the original method
def auth_request() -> Response:
    """nginx ``auth_request``: 200, 401 with ``Location`` to the portal, or 403."""
    target = _original(
        lambda: target_from_url(_one("X-Original-Method", optional=True), _one("X-Original-URL"))
    )
    if isinstance(target, Response):
        return target
    return _answer(target, redirect_status=None)


@blueprint.route("/api/authz/forward-auth", methods=METHODS, provide_automatic_options=False)
@csrf_exempt
def forward_auth() -> Response:
    """Caddy ``forward_auth`` / Traefik ``forwardAuth``: 200, a redirect to the portal
    (302, or 303 for unsafe methods; 401 for clients that are not loading a page), or 403."""
    target = _original(_forwarded_target)
    if isinstance(target, Response):
        return target
    unsafe = target.method not in ("GET", "HEAD", "OPTIONS")
    return _answer(
        target, redirect_status=(303 if unsafe else 302) if browser_page_load() else None
    )


# -- the original request ---------------------------------------------------------------


class BadHeaders(ValueError):
    """The proxy's headers do not say what the original request was."""


def _original(read: Any) -> Target | Response:
    if not from_trusted_proxy():
        return _refuse_headers(
            "this request did not come from a proxy COATCHECK_TRUSTED_PROXIES believes, so "
            "its headers cannot say what the original request was"
        )
    try:
        return read()  # type: ignore[no-any-return]
    except BadHeaders as exc:
        return _refuse_headers(str(exc))


def _refuse_headers(message: str) -> Response:
    log.warning("coatcheck: forward auth refused: %s", message)
    return _json(400, {"error": "invalid", "message": message})


def _one(name: str, *, optional: bool = False) -> str:
    """Return the value of header ``name``; a missing (unless ``optional``) or empty one
    is :class:`BadHeaders`."""
    # The WSGI server has already joined a repeated header into one value (with a
    # comma), which no header read here accepts: a URL or method with ", " is refused.
    raw = request.environ.get("HTTP_" + name.upper().replace("-", "_"))
    if raw is None and optional:
        return ""
    value = str(raw or "").strip()
    if not value:
        raise BadHeaders(f"the {name} header is {'missing' if raw is None else 'empty'}")
    return value


def target_from_url(method: str, url: str) -> Target:
    """Return the target of ``method`` (the request's own when empty) on ``url``."""
    if _JOINED_URLS.search(url):  # two headers a server joined with a comma
        raise BadHeaders("the X-Original-URL header is sent more than once")
    if "#" in url:
        raise BadHeaders(FRAGMENT)
    try:
        return parse_target(method or request.method, url)
    except ValueError as exc:
        raise BadHeaders(f"X-Original-URL or X-Original-Method is not usable: {exc}") from None


def _forwarded_target() -> Target:
    method = _one("X-Forwarded-Method", optional=True) or request.method
    scheme = _one("X-Forwarded-Proto").lower()
    host = _one("X-Forwarded-Host")
    uri = _one("X-Forwarded-URI")
    if scheme not in ("http", "https"):
        raise BadHeaders("X-Forwarded-Proto must be http or https")
    # The host (with its port) and the path must stay what they are once joined.
    if any(c in host for c in ",/?#@\\") or not uri.startswith("/"):
        raise BadHeaders("X-Forwarded-Host or X-Forwarded-URI is not usable")
    if "#" in uri:
        raise BadHeaders(FRAGMENT)
    try:
        return parse_target(method, f"{scheme}://{host}{uri}")
    except ValueError as exc:
        raise BadHeaders(f"X-Forwarded-Host, -URI or -Method is not usable: {exc}") from None


# -- the answer -------------------------------------------------------------------------


def _who() -> Who | None:
    """Return the logged-in user from the session (or bearer token), or ``None``."""
    user = session_user()
    if not user.is_authenticated:
        return None
    # Not ext.factors.current_assurance: that asks current_user, which may log in by
    # a remember-me cookie, and a proxy would drop the cookies of a new session.
    family = bearer_family() if user.via == "bearer" else None
    if family is not None:
        assurance, email = Assurance.from_meta(family.meta, family.created_at), ""
    else:
        assurance = session_assurance()
        email = str(current_session().peek_meta().get("email") or "")
    return Who(str(user.username or ""), frozenset(user.roles), assurance.aal, email)


def _answer(target: Target, *, redirect_status: int | None) -> Response:
    decision = access_rules().decide(target, proven_client_address(), _who)
    if decision.outcome == ALLOW:
        response = Response(status=200)
        if decision.who is not None:
            _identify(response, decision.who)
        return _private(response)
    if decision.outcome == FORBIDDEN:
        return _json(403, {"error": "forbidden", "message": "You may not see this."})
    page = "login" if decision.outcome == LOGIN else "reauth"
    location = f"{portal_url()}/{page}?rd={quote(target.url, safe='')}"
    code, message = (
        ("unauthenticated", "Log in to see this.")
        if decision.outcome == LOGIN
        else ("second_factor_required", "This site needs a login with a second factor.")
    )
    if redirect_status is not None:
        response = Response(status=redirect_status)
    else:
        response = _json(401, {"error": code, "message": message})
    response.headers["Location"] = location
    return _private(response)


def _identify(response: Response, who: Who) -> None:
    values = (who.username, ",".join(sorted(who.roles)), who.email, who.username)
    for name, value in zip(IDENTITY_HEADERS, values, strict=True):
        response.headers[name] = _header_text(value)


def _header_text(value: str) -> str:
    """Return ``value`` as a WSGI header value: its UTF-8 bytes, one character each.

    WSGI servers write header values as Latin-1; an address like ``李@例子.中国``
    would fail there (a 500 for the proxy). Its UTF-8 bytes are what proxies pass on
    and applications read.
    """
    text = "".join(c for c in value if c >= " " and c != "\x7f")
    return text.encode("utf-8").decode("latin-1")


def _json(status: int, body: dict[str, str]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return _private(response)


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def portal_url() -> str:
    """Return the portal's origin: ``COATCHECK_PUBLIC_URL``, else (development) the
    origin this request was sent to, before any proxy header rewrote it."""
    public = CoatCheck.state().settings.public_url
    if public:
        return public.rstrip("/")
    environ = request.environ.get("werkzeug.proxy_fix.orig") or request.environ
    scheme = environ.get("wsgi.url_scheme") or request.scheme
    host = environ.get("HTTP_HOST") or request.host
    return f"{scheme}://{host}"


# -- where a login may send the browser back to -----------------------------------------


def follow(value: str | None) -> str:
    """Return ``value`` if a login may send the browser there, else ``""``.

    A same-site path (:func:`~coatcheck.core.redirects.is_safe_next`) is
    followed; so is an absolute URL (an ``rd``) whose host is under
    ``COATCHECK_COOKIE_DOMAIN``, is named in an access rule, or is the portal's
    own, over https (or http when the cookie is not secure).
    """
    if not value:
        return ""
    if is_safe_next(value):
        return value
    return value if allowed_rd(value) else ""


def allowed_rd(url: str) -> bool:
    """Tell whether a login may send the browser to the absolute ``url``."""
    try:
        target = parse_target("GET", url)
    except ValueError:
        return False
    if target.ambiguous is not None or "\\" in url:
        return False
    return target.scheme in _schemes() and allowed_host(target.host)


def _schemes() -> tuple[str, ...]:
    """Return the schemes the portal sends browsers to, and trusts origins of: https, and
    http too when the cookies are not secure (a plain-HTTP deployment)."""
    return ("https",) if CoatCheck.state().settings.cookie_secure else ("https", "http")


def allowed_host(host: str) -> bool:
    """Tell whether the portal may send browsers to ``host``."""
    settings = CoatCheck.state().settings
    portal = urlsplit(portal_url()).hostname or ""
    return (
        host == portal
        or (bool(settings.cookie_domain) and host_under(host, settings.cookie_domain))
        or access_rules().names_host(host)
    )


def asked_by(target: str) -> str | None:
    """Return the host of an absolute ``target`` (the site that sent the user), else ``None``."""
    if not target or is_safe_next(target):
        return None
    return urlsplit(target).hostname


def portal_next() -> str:
    """Return where this request's login, second step or step-up goes after success:
    its ``next`` or ``rd`` (form first, then query), if :func:`follow` allows it."""
    for source in (request.form, request.args):
        for key in ("next", "rd"):
            value = source.get(key)
            if value:
                return follow(value)
    return ""


def _protected_origin(rules: AccessRules, domain: str, origin: str) -> bool:
    """Tell whether ``origin`` is a site the rules protect under the cookie domain
    (such a site may post to the portal: a logout button, say)."""
    try:
        target = parse_target("GET", origin)
    except ValueError:
        return False
    return (
        target.resource == "/"
        and "#" not in origin  # an origin: no path, query, fragment
        and target.scheme in _schemes()
        and host_under(target.host, domain)
        and rules.protects_host(target.host)
    )


__all__ = [
    "IDENTITY_HEADERS",
    "access_rules",
    "allowed_host",
    "allowed_rd",
    "asked_by",
    "follow",
    "install",
    "portal_next",
    "portal_url",
]
