"""HTTP-wide behaviour of the service: one error shape, security headers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..ext.errors import error_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("coatcheck.service")

#: The pages use no inline script or style and load nothing from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: The policy of the few pages that load the service's own script (WebAuthn): the
#: same, with scripts from this origin only (still no inline script).
SCRIPT_PAGE_CSP = CONTENT_SECURITY_POLICY.replace("script-src 'none'", "script-src 'self'")


def _slug(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def _handle_http_error(exc: HTTPException) -> Response:
    if exc.code is None or exc.code < 400:
        return exc  # type: ignore[return-value]
    response = error_response(exc.code, _slug(exc), exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() in ("allow", "retry-after"):
            response.headers[name] = value
    return response


def _handle_server_error(exc: InternalServerError) -> Response:
    original = exc.original_exception or exc
    log.error("unhandled error: %s", type(original).__name__, exc_info=original)
    return error_response(500, "internal_error", "Something went wrong on our side.")


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """WSGI middleware: add the security headers a response has not set itself.

    At the WSGI layer every response gets them (error pages, and answers made
    before any Flask hook), and they are appended to the header list as they
    are: no header object built, no value checked again, on every request.
    HSTS goes only on HTTPS requests (``wsgi.url_scheme`` as a trusted proxy
    fix leaves it, which happens before the response starts).
    """

    _PLAIN = tuple((name.lower(), (name, value)) for name, value in SECURITY_HEADERS)
    _SECURE = (*_PLAIN, (_HSTS[0].lower(), _HSTS))

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            secure = environ.get("wsgi.url_scheme") == "https"
            present = {name.lower() for name, _ in headers}
            headers.extend(
                header
                for lower, header in (self._SECURE if secure else self._PLAIN)
                if lower not in present
            )
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def allow_own_script(response: Response) -> Response:
    """Let ``response`` (a page) run the service's own static script; return it.

    The page's own header wins over :class:`SecurityHeaders`' default.
    """
    response.headers["Content-Security-Policy"] = SCRIPT_PAGE_CSP
    return response


#: The pages whose form may end on another site: a login (its second step too), a step-up,
#: and the recovery codes shown at the end of an enrolment a login was sent to.
FORM_REDIRECT_PAGES = frozenset({"pages.login", "security.reauth", "security.recovery_codes"})


def allow_form_redirect(response: Response) -> Response:
    """Let a page's forms end on the site that sent the user here (an after-request hook).

    A login, second step or step-up form answers with a redirect to its
    ``rd``, another origin; browsers hold that redirect to the page's CSP
    ``form-action``. The page that carries a followed ``rd`` allows that one
    origin, and no other.
    """
    if request.endpoint not in FORM_REDIRECT_PAGES or response.mimetype != "text/html":
        return response
    from .authz import portal_next

    try:
        target = portal_next()
    except HTTPException:  # the form itself was refused (413): this is its error page
        return response
    if not target or target.startswith("/"):
        return response
    parts = urlsplit(target)
    policy = response.headers.get("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["Content-Security-Policy"] = policy.replace(
        "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
    )
    return response


def install(app: Flask) -> None:
    """Install the error handlers and security headers on ``app``."""
    app.after_request(allow_form_redirect)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(InternalServerError, _handle_server_error)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
