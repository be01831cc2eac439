"""coatcheck's errors as HTTP responses: one shape, mapped in one place.

JSON clients (an ``/api/`` path, or ``Accept: application/json``) get
``{"error": code, "message": text}``; browsers get a small HTML page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import (
    Flask,
    Response,
    current_app,
    has_request_context,
    make_response,
    redirect,
    request,
)
from markupsafe import escape

from ..core import csrf
from ..core.errors import (
    CSRFError,
    Forbidden,
    InvalidCredentials,
    InvalidUsername,
    PasswordRejected,
    StoreUnavailable,
    Throttled,
    TokenError,
    Unauthenticated,
    UsernameTaken,
)
from ..core.logtext import escape_for_log
from ..users import InvalidEmail
from .client import bearer_token
from .context import services

STORE_UNAVAILABLE = "store_unavailable"
_STORE_UNAVAILABLE_MESSAGE = "The session store is unavailable. Please try again shortly."


def wants_json() -> bool:
    """Tell whether the current request comes from an API client rather than a page.

    In order: an ``/api/`` path, a JSON body, ``X-Requested-With: XMLHttpRequest``
    or a ``Sec-Fetch-Mode`` other than ``navigate`` (``fetch()`` and XHR send
    ``cors``, ``same-origin`` or ``no-cors``) mean JSON; ``Sec-Fetch-Mode:
    navigate`` (the browser loading a page) means HTML; otherwise the
    ``Accept`` header decides, and a client that sends none gets JSON
    (browsers always send one). So ``fetch("/account")`` gets a JSON 401, not
    the login page.
    """
    if not has_request_context():
        return True
    if request.path.startswith("/api/") or request.is_json:
        return True
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return True
    mode = request.headers.get("Sec-Fetch-Mode", "").lower()
    if mode:
        return mode != "navigate"
    if not request.accept_mimetypes:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str) -> Response:
    """Return the error response for ``code``, as JSON or HTML for this request."""
    if wants_json():
        response = Response(
            current_app.json.dumps({"error": code, "message": message}),
            mimetype="application/json",
        )
    else:
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>{status} {escape(code)}</title>"
            f"<h1>{escape(message)}</h1></html>"
        )
        response = Response(page, mimetype="text/html")
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def store_unavailable_response() -> Response:
    """Return the 503 a request gets when the session store cannot be reached."""
    response = error_response(503, STORE_UNAVAILABLE, _STORE_UNAVAILABLE_MESSAGE)
    response.headers["Retry-After"] = "5"
    return response


def replace_response(response: Response, replacement: Response) -> None:
    """Turn ``response`` into ``replacement`` in place.

    Used when a failure is found after the view has answered (while saving the
    session), where Flask no longer lets an error handler choose the response.
    """
    response.status_code = replacement.status_code
    response.set_data(replacement.get_data())
    response.headers.clear()
    response.headers.extend(replacement.headers)


def _handle_store_unavailable(exc: StoreUnavailable) -> Response:
    current_app.logger.error("session store unavailable: %s", exc)
    return store_unavailable_response()


def _handle_csrf(exc: CSRFError) -> Response:
    current_app.logger.warning(
        "CSRF check failed (%s) for %s %s",
        exc.reason,
        escape_for_log(request.method),
        escape_for_log(request.path),
    )
    return error_response(403, "csrf_failed", csrf.MESSAGES.get(exc.reason, "CSRF check failed."))


#: Where an application's :meth:`CoatCheck.unauthorized_handler` is kept on the app.
UNAUTHORIZED_KEY = "coatcheck.unauthorized"


def _handle_unauthenticated(exc: Unauthenticated) -> Response:
    handler = current_app.extensions.get(UNAUTHORIZED_KEY)
    if handler is not None:
        return make_response(handler())
    login_url = services().settings.login_url
    if login_url and not wants_json():
        target = request.full_path if request.query_string else request.path
        return redirect(f"{login_url}?{urlencode({'next': target})}")  # type: ignore[return-value]
    response = error_response(401, "unauthenticated", "Log in to see this.")
    if bearer_token() is not None:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _handle_forbidden(exc: Forbidden) -> Response:
    return error_response(403, "forbidden", "You are not allowed to do this.")


def _handle_invalid_credentials(exc: InvalidCredentials) -> Response:
    return error_response(401, "invalid_credentials", "Wrong username or password.")


def _handle_throttled(exc: Throttled) -> Response:
    response = error_response(
        429, "throttled", f"Too many {exc.what}. Try again in {exc.retry_after} seconds."
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _handle_password_rejected(exc: PasswordRejected) -> Response:
    return error_response(400, "weak_password", exc.message)


def _handle_username_taken(exc: UsernameTaken) -> Response:
    return error_response(409, "username_taken", "That username is taken.")


def _handle_token_error(exc: TokenError) -> Response:
    return error_response(401, "invalid_token", "The token is invalid, expired or revoked.")


def _handle_invalid(exc: Exception) -> Response:
    return error_response(400, "invalid", str(exc))


def register_error_handlers(app: Flask) -> None:
    """Map coatcheck's exceptions to responses on ``app``."""
    app.register_error_handler(StoreUnavailable, _handle_store_unavailable)
    app.register_error_handler(CSRFError, _handle_csrf)
    app.register_error_handler(Unauthenticated, _handle_unauthenticated)
    app.register_error_handler(Forbidden, _handle_forbidden)
    app.register_error_handler(InvalidCredentials, _handle_invalid_credentials)
    app.register_error_handler(Throttled, _handle_throttled)
    app.register_error_handler(PasswordRejected, _handle_password_rejected)
    app.register_error_handler(UsernameTaken, _handle_username_taken)
    app.register_error_handler(InvalidUsername, _handle_invalid)
    app.register_error_handler(TokenError, _handle_token_error)
    app.register_error_handler(InvalidEmail, _handle_invalid)
