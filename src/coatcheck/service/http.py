"""HTTP-wide behaviour of the service: one error shape, security headers."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..ext.errors import error_response

log = logging.getLogger("coatcheck.service")

#: The pages use no inline script or style and load nothing from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


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


def _security_headers(response: Response) -> Response:
    """Add the security headers a view has not set itself (one pass over the headers)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    wanted = (*SECURITY_HEADERS, _HSTS) if request.is_secure else SECURITY_HEADERS
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def install(app: Flask) -> None:
    """Install the error handlers and security headers on ``app``."""
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(InternalServerError, _handle_server_error)
    app.after_request(_security_headers)
