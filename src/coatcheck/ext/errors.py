"""coatcheck's errors as HTTP responses: one shape, mapped in one place.

JSON clients (an ``/api/`` path, or ``Accept: application/json``) get
``{"error": code, "message": text}``; browsers get an HTML page: the
application's template ``coatcheck/error.html`` when it has one, else a small
built-in page.
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
    render_template,
    request,
)
from jinja2 import TemplateNotFound
from markupsafe import escape
from werkzeug.http import HTTP_STATUS_CODES

from ..core import csrf
from ..core.errors import (
    CSRFError,
    EmailVerificationRequired,
    EnrolmentRequired,
    Forbidden,
    InvalidCode,
    InvalidCredentials,
    InvalidUsername,
    PasswordRejected,
    ReauthenticationRequired,
    SecondFactorRequired,
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

#: The application template that, when present, renders every HTML error page.
#: It gets ``status``, ``code``, ``title``, ``message`` and ``advice``.
ERROR_TEMPLATE = "coatcheck/error.html"

#: What a person can do about an error, by status (:data:`CODE_ADVICE` first).
ADVICE = {
    400: "Check what you entered and try again.",
    401: "Log in, then try again.",
    403: "This needs other rights than yours. If you think it should work, ask an administrator.",
    404: "Check the address, or start again from the home page.",
    405: "This address does not take that kind of request. Go back and use the page's own "
    "links and buttons.",
    413: "That was more data than this site accepts. Send less and try again.",
    429: "Wait a moment, then try again.",
    500: "Something broke on our side. Try again in a moment.",
    503: "Wait a few seconds, then reload the page.",
}
#: What a person can do about an error, by code, where the status says too little.
CODE_ADVICE = {"csrf_failed": "Go back, reload the page and send the form again."}
_DEFAULT_ADVICE = "Go back and try again."

_BUILTIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title}</title>
<style>
body {{ margin: 0; background: #fbfaf7; color: #1d2330;
  font: 1rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
main {{ max-width: 34rem; margin: 12vh auto 2rem; padding: 1.5rem;
  background: #fff; border: 1px solid #dde1e8; border-radius: 10px; }}
.status {{ margin: 0; color: #5b6475; font-size: .9rem; }}
h1 {{ margin: .25rem 0 1rem; font-size: 1.5rem; line-height: 1.25; }}
a {{ color: #2f5bd3; font-weight: 600; }}
</style>
</head>
<body>
<main>
<p class="status">Error {status}</p>
<h1>{title}</h1>
<p>{message}</p>
<p>{advice}</p>
<p><a href="{home}">Back to the home page</a></p>
</main>
</body>
</html>
"""


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
    return not browser_page_load()


def browser_page_load() -> bool:
    """Tell whether the request's headers say a browser is loading a page (the part of
    :func:`wants_json` that looks at headers alone; forward auth asks it of the
    request the proxy passes on)."""
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    mode = request.headers.get("Sec-Fetch-Mode", "").lower()
    if mode:
        return mode == "navigate"
    if not request.accept_mimetypes:
        return False
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best != "application/json"


def error_response(status: int, code: str, message: str) -> Response:
    """Return the error response for ``code``, as JSON or HTML for this request."""
    if wants_json():
        response = Response(
            current_app.json.dumps({"error": code, "message": message}),
            mimetype="application/json",
        )
    else:
        response = Response(error_page(status, code, message), mimetype="text/html")
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(status: int, code: str, message: str) -> str:
    """Return the HTML page for an error.

    An application that has a template :data:`ERROR_TEMPLATE` gets it
    rendered (its own layout); any other gets a small self-contained page.
    """
    title = HTTP_STATUS_CODES.get(status, "Error")
    advice = CODE_ADVICE.get(code) or ADVICE.get(status, _DEFAULT_ADVICE)
    try:
        template = current_app.jinja_env.get_or_select_template(ERROR_TEMPLATE)
    except TemplateNotFound:
        template = None
    if template is not None:
        try:
            return render_template(
                template, status=status, code=code, title=title, message=message, advice=advice
            )
        except Exception:  # an error page must not fail in turn: fall back to the built-in one
            current_app.logger.exception("the error template %s failed", ERROR_TEMPLATE)
    return _BUILTIN_PAGE.format(
        status=status,
        title=escape(title),
        message=escape(message),
        advice=escape(advice),
        home=escape(f"{request.script_root}/"),
    )


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


def _handle_second_factor_required(exc: SecondFactorRequired) -> Response:
    return _unfinished_login(
        "second_factor_required", "Finish logging in: enter your second factor first."
    )


def _handle_enrolment_required(exc: EnrolmentRequired) -> Response:
    return _unfinished_login(
        "second_factor_enrolment_required",
        "Your account must have a second factor: set one up to finish logging in.",
    )


def _unfinished_login(code: str, message: str) -> Response:
    """Answer a request of a login still waiting for its next step (SPEC §8)."""
    login_url = services().settings.login_url
    if login_url and not wants_json():
        target = request.full_path if request.query_string else request.path
        return redirect(f"{login_url}?{urlencode({'next': target})}")  # type: ignore[return-value]
    return error_response(401, code, message)


def _handle_reauthentication_required(exc: ReauthenticationRequired) -> Response:
    reauth_url = services().settings.reauth_url
    if reauth_url and not wants_json():
        target = request.full_path if request.query_string else request.path
        if request.method != "GET":  # a form's answer: come back to the page it was on
            target = _same_site_referrer() or target
        return redirect(f"{reauth_url}?{urlencode({'next': target})}", 303)  # type: ignore[return-value]
    return error_response(
        401, "reauthentication_required", "Confirm it is you (password or second factor) first."
    )


def _same_site_referrer() -> str | None:
    """Return the path of the page a form was sent from, when it is this site's."""
    referrer = request.referrer
    if not referrer or not referrer.startswith(request.host_url):
        return None
    return "/" + referrer[len(request.host_url) :]


def _handle_email_verification_required(exc: EmailVerificationRequired) -> Response:
    return error_response(
        403,
        "email_verification_required",
        "Confirm your e-mail address first: open the link we sent you (or ask for a new one).",
    )


def _handle_invalid_code(exc: InvalidCode) -> Response:
    return error_response(401, "invalid_code", "That code is wrong, used already or expired.")


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
    app.register_error_handler(SecondFactorRequired, _handle_second_factor_required)
    app.register_error_handler(EnrolmentRequired, _handle_enrolment_required)
    app.register_error_handler(ReauthenticationRequired, _handle_reauthentication_required)
    app.register_error_handler(InvalidCode, _handle_invalid_code)
    app.register_error_handler(EmailVerificationRequired, _handle_email_verification_required)
    app.register_error_handler(Forbidden, _handle_forbidden)
    app.register_error_handler(InvalidCredentials, _handle_invalid_credentials)
    app.register_error_handler(Throttled, _handle_throttled)
    app.register_error_handler(PasswordRejected, _handle_password_rejected)
    app.register_error_handler(UsernameTaken, _handle_username_taken)
    app.register_error_handler(InvalidUsername, _handle_invalid)
    app.register_error_handler(TokenError, _handle_token_error)
    app.register_error_handler(InvalidEmail, _handle_invalid)
