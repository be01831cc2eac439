"""The HTML pages: welcome, register, log in and out, account, devices, password.

Every page works without JavaScript. Forms are POSTed with a CSRF token; an
outcome is flashed and followed by a redirect (POST/redirect/GET), and a form
with a mistake in it is shown again with the error and a 4xx status.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from weakref import WeakSet

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import default_exceptions
from werkzeug.wrappers import Response as WerkzeugResponse

from ..auth.assurance import Assurance
from ..core import csrf
from ..core.errors import (
    CSRFError,
    InvalidCredentials,
    InvalidUsername,
    PasswordRejected,
    Throttled,
    UsernameTaken,
)
from ..core.logtext import escape_for_log
from ..core.redirects import safe_next
from ..ext import (
    CoatCheck,
    authenticate,
    change_password,
    current_session,
    current_user,
    iso_time,
    list_sessions,
    login_required,
    login_user,
    logout_user,
    register_user,
    revoke_other_sessions,
    revoke_session,
    session_assurance,
)
from ..ext.errors import error_response, wants_json
from ..users import InvalidEmail
from .useragent import describe_user_agent

blueprint = Blueprint("pages", __name__)

#: How many of the user's own audit events the account page shows.
RECENT_EVENTS = 10
#: Minimum password length, as enforced by the library's default policy.
MIN_PASSWORD_LENGTH = 12

#: Audit event names as people read them; others are made readable from their name.
EVENT_LABELS = {
    "login_succeeded": "Logged in",
    "login_failed": "Failed login",
    "login_throttled": "Login blocked after too many failures",
    "logout": "Logged out",
    "session_revoked": "Session revoked",
    "all_sessions_revoked": "Sessions revoked",
    "password_changed": "Password changed",
    "roles_changed": "Roles changed",
    "remember_token_theft": "Stolen remember-me cookie detected",
    "refresh_token_reuse": "Reused refresh token detected",
    "user_disabled": "Account disabled",
    "user_created": "Account created",
}


# -- template filters (app-wide: the admin pages use them too) -----------------


@blueprint.app_template_filter("utc")
def utc_filter(value: float | str | datetime | None) -> str:
    """Return a time as ``2026-11-22 01:02 UTC`` (a Unix time, ISO 8601 text or a datetime)."""
    moment = _as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "—"


@blueprint.app_template_filter("isotime")
def isotime_filter(value: float | str | datetime | None) -> str:
    """Return a time as ISO 8601 in UTC, for ``<time datetime=...>``."""
    moment = _as_datetime(value)
    return iso_time(moment.timestamp()) if moment is not None else ""


@blueprint.app_template_filter("device")
def device_filter(user_agent: str | None) -> str:
    """Return a short "Browser on OS" for a user agent."""
    return describe_user_agent(user_agent)


#: The authentication methods (SPEC §8's ``amr``) as people read them.
METHOD_NAMES = {
    "pwd": "password",
    "otp": "authenticator code",
    "recovery": "recovery code",
    "webauthn": "security key",
    "passkey": "passkey",
}


@blueprint.app_template_filter("methods")
def methods_filter(assurance: Assurance) -> str:
    """Return how a login was made, e.g. "Password and authenticator code"."""
    names = [METHOD_NAMES.get(m, m) for m in assurance.amr]
    text = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    return text[:1].upper() + text[1:]


@blueprint.app_template_filter("event_label")
def event_label_filter(event: str) -> str:
    """Return an audit event name as people read it."""
    label = EVENT_LABELS.get(event)
    if label is None:
        words = event.replace("_", " ").strip()
        label = words[:1].upper() + words[1:]
    return label


@blueprint.app_template_filter("stock_description")
def stock_description_filter(status: int) -> str:
    """Return Werkzeug's stock description of ``status``, which error pages replace."""
    exception = default_exceptions.get(status)
    return (exception.description or "") if exception is not None else ""


def _as_datetime(value: float | str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value, UTC)


@blueprint.context_processor
def _password_rules() -> dict[str, object]:
    return {"min_password_length": MIN_PASSWORD_LENGTH}


# -- plain HTTP on a host that is not this machine ------------------------------------

_warned_plain_http: WeakSet[Flask] = WeakSet()


def plain_http_drops_cookies() -> bool:
    """Tell whether the browser will drop coatcheck's cookies on this request.

    Secure cookies are refused over plain HTTP, except from loopback hosts
    (``localhost``, ``127.0.0.1``, ``[::1]``): opened at a LAN address or a
    development hostname, the service sets no cookie and every login fails.
    """
    if request.scheme != "http" or not CoatCheck.state().settings.cookie_secure:
        return False
    if request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https":
        return (
            False  # HTTPS ends at a proxy: the browser is on HTTPS (ProxyFix is a separate matter)
        )
    return not _is_loopback(request.host)


def _is_loopback(host: str) -> bool:
    name = host[1 : host.find("]")] if host.startswith("[") else host.partition(":")[0]
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@blueprint.app_context_processor
def _plain_http() -> dict[str, object]:
    return {"plain_http": plain_http_drops_cookies()}


@blueprint.before_request
def _warn_plain_http() -> None:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if app not in _warned_plain_http and plain_http_drops_cookies():
        _warned_plain_http.add(app)
        app.logger.warning(
            "coatcheck: a browser opened the service over plain HTTP at %s; it drops the "
            "Secure cookies there, so logins fail (no CSRF cookie). Serve it over HTTPS, or "
            "set COATCHECK_COOKIE_SECURE=false on a LAN you trust.",
            escape_for_log(request.host),
        )


# -- helpers --------------------------------------------------------------------


def _see_other(endpoint: str, **values: Any) -> WerkzeugResponse:
    """Redirect the browser to ``endpoint`` with a GET (303 See Other)."""
    return redirect(url_for(endpoint, **values), 303)


def _sentence(message: str) -> str:
    """Return a library message as a sentence: capital first letter, final stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _throttled(template: str, exc: Throttled, **context: object) -> Response:
    minutes = max(1, math.ceil(exc.retry_after / 60))
    unit = "minute" if minutes == 1 else "minutes"
    flash(f"Too many failed attempts. Try again in {minutes} {unit}.", "error")
    response = Response(render_template(template, **context), status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _form_error(template: str, message: str, status: int, **context: object) -> Response:
    flash(message, "error")
    return Response(render_template(template, **context), status=status)


# -- pages ----------------------------------------------------------------------


@blueprint.get("/")
def index() -> ResponseReturnValue:
    return render_template("index.html")


@blueprint.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return _see_other("pages.account")
    if request.method == "GET":
        return render_template("register.html", username="", email="")
    username = request.form.get("username", "").strip()
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    context = {"username": username, "email": email}
    if not username or not password:
        return _form_error("register.html", "Choose a username and a password.", 400, **context)
    if password != request.form.get("password_confirm", ""):
        return _form_error("register.html", "The two passwords do not match.", 400, **context)
    try:
        user = register_user(username, password, email=email or None)
    except PasswordRejected as exc:
        return _form_error("register.html", exc.message, 400, **context)
    except UsernameTaken:
        return _form_error("register.html", "That username is taken.", 409, **context)
    except (InvalidUsername, InvalidEmail) as exc:
        return _form_error("register.html", _sentence(str(exc)), 400, **context)
    login_user(user)
    flash(f"Welcome, {user.username}. Your account is ready and you are logged in.", "success")
    return _see_other("pages.account")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    source = request.form if request.method == "POST" else request.args
    target = safe_next(source.get("next"), "")
    if current_user.is_authenticated:
        return redirect(target or url_for("pages.account"), 303)
    if request.method == "GET":
        return render_template(
            "login.html", username="", next=target, logged_out="logged_out" in request.args
        )
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    context = {"username": username, "next": target}
    if not username or not password:
        return _form_error("login.html", "Enter your username and password.", 400, **context)
    try:
        user = authenticate(username, password)
    except InvalidCredentials:
        return _form_error("login.html", "Wrong username or password.", 401, **context)
    except Throttled as exc:
        return _throttled("login.html", exc, **context)
    login_user(user, remember=bool(request.form.get("remember")))
    flash(f"Welcome back, {user.username}.", "success")
    return redirect(target or url_for("pages.account"), 303)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    # The session, flashes included, is gone: the login page says it instead.
    return _see_other("pages.login", logged_out=1)


@blueprint.get("/account")
@login_required
def account() -> ResponseReturnValue:
    session = current_session()
    users = CoatCheck.state().users
    raw = current_user.id  # an int, or text for sessions from before typed IDs
    user_id = raw if isinstance(raw, int) else int(str(raw)) if str(raw).isdigit() else None
    events = users.list_events(user_id=user_id, limit=RECENT_EVENTS) if user_id else []
    return render_template(
        "account.html",
        handle=session.handle,
        record=session.record,
        remembered=session.permanent,
        assurance=session_assurance(),
        events=events,
    )


@blueprint.get("/account/sessions")
@login_required
def account_sessions() -> ResponseReturnValue:
    devices = sorted(list_sessions(), key=lambda d: (not d.current, -d.last_seen_at))
    return render_template("account_sessions.html", devices=devices)


# Named apart from the library's revoke_session, which it calls.
@blueprint.post("/account/sessions/<handle>/revoke", endpoint="revoke_session")
@login_required
def revoke_session_view(handle: str) -> ResponseReturnValue:
    if handle == current_session().handle:
        flash("That is this device: use “Log out” to end it.", "warning")
    elif revoke_session(handle):
        flash("That device is logged out.", "success")
    else:
        flash("You have no session with that handle; it may have ended already.", "error")
    return _see_other("pages.account_sessions")


@blueprint.post("/account/sessions/revoke-others")
@login_required
def revoke_others() -> ResponseReturnValue:
    count = revoke_other_sessions()
    if count:
        noun = "session" if count == 1 else "sessions"
        flash(f"Logged out everywhere else ({count} {noun} ended).", "success")
    else:
        flash("There were no other sessions to end.", "success")
    return _see_other("pages.account_sessions")


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def account_password() -> ResponseReturnValue:
    template = "account_password.html"
    if request.method == "GET":
        return render_template(template)
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if not current or not new:
        return _form_error(template, "Enter your current and your new password.", 400)
    if new != request.form.get("new_password_confirm", ""):
        return _form_error(template, "The two new passwords do not match.", 400)
    try:
        change_password(current, new)
    except InvalidCredentials:
        return _form_error(template, "Your current password is not right.", 401)
    except Throttled as exc:
        return _throttled(template, exc)
    except PasswordRejected as exc:
        return _form_error(template, exc.message, 400)
    flash("Password changed. Your other sessions were logged out.", "success")
    return _see_other("pages.account")


# -- CSRF failures: an old form is shown again, not refused with an error page ---------

#: What the service adds, for API clients, to the library's CSRF messages.
API_CSRF_HINTS = {
    csrf.REASON_NO_TOKEN: "GET /api/csrf gives one.",
    csrf.REASON_BAD_TOKEN: "GET /api/csrf gives a fresh one.",
    csrf.REASON_NO_SECRET: "GET /api/csrf gives one, with the cookie it is checked against.",
}
#: The failures a person causes with an old form (as opposed to another site's request).
STALE_FORM_REASONS = frozenset({csrf.REASON_NO_TOKEN, csrf.REASON_BAD_TOKEN, csrf.REASON_NO_SECRET})
STALE_FORM = "This form was open too long or in another tab; please try again."


def csrf_failed(exc: CSRFError) -> ResponseReturnValue:
    """Answer a request refused by the CSRF check (the service's handler of :class:`CSRFError`).

    A page's form with an old or missing token is shown again with a fresh
    token (403, nothing done); an API client is told where tokens come from.
    """
    current_app.logger.warning(
        "CSRF check failed (%s) for %s %s",
        exc.reason,
        escape_for_log(request.method),
        escape_for_log(request.path),
    )
    if not wants_json() and exc.reason in STALE_FORM_REASONS:
        again = _FORMS_AGAIN.get(request.endpoint or "")
        answer = again() if again is not None else None
        if answer is not None:
            return answer
    message = csrf.MESSAGES.get(exc.reason, "CSRF check failed.")
    hint = API_CSRF_HINTS.get(exc.reason) if wants_json() else None
    return error_response(403, "csrf_failed", f"{message} {hint}" if hint else message)


@blueprint.app_context_processor
def _form_notice() -> dict[str, object]:
    return {"form_notice": g.get("form_notice")}


def _again(template: str, **context: object) -> Response:
    g.form_notice = STALE_FORM
    return Response(render_template(template, **context), status=403)


def _view_again(view: Callable[[], ResponseReturnValue]) -> Response:
    g.form_notice = STALE_FORM
    response = current_app.make_response(view())
    response.status_code = 403
    return response


def _login_again() -> ResponseReturnValue:
    target = safe_next(request.form.get("next"), "")
    if current_user.is_authenticated:  # logged in meanwhile, in another tab
        flash(f"You are logged in as {current_user.username}.", "success")
        return redirect(target or url_for("pages.account"), 303)
    username = request.form.get("username", "").strip()
    return _again("login.html", username=username, next=target)


def _register_again() -> ResponseReturnValue:
    if current_user.is_authenticated:
        flash(f"You are logged in as {current_user.username}.", "success")
        return _see_other("pages.account")
    form = request.form
    return _again(
        "register.html", username=form.get("username", "").strip(), email=form.get("email", "")
    )


def _logout_again() -> ResponseReturnValue:
    if not current_user.is_authenticated:  # logged out meanwhile, in another tab
        return _see_other("pages.login", logged_out=1)
    return _again("logout.html")


def _password_again() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return _see_other("pages.login", next=url_for("pages.account_password"))
    return _again("account_password.html")


def _devices_again() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return _see_other("pages.login", next=url_for("pages.account_sessions"))
    return _view_again(account_sessions)


def _admin_again() -> ResponseReturnValue | None:
    from . import admin

    if not current_user.has_role(admin.ADMIN_ROLE):
        return None  # the error page: only an admin may see the admin page
    return _view_again(admin.index)


_FORMS_AGAIN: dict[str, Callable[[], ResponseReturnValue | None]] = {
    "pages.login": _login_again,
    "pages.register": _register_again,
    "pages.logout": _logout_again,
    "pages.account_password": _password_again,
    "pages.revoke_session": _devices_again,
    "pages.revoke_others": _devices_again,
    "admin.set_roles": _admin_again,
    "admin.disable": _admin_again,
    "admin.logout_everywhere": _admin_again,
}
