"""The HTML pages: welcome, register, log in and out, account, devices, password.

Every page works without JavaScript. Forms are POSTed with a CSRF token; an
outcome is flashed and followed by a redirect (POST/redirect/GET), and a form
with a mistake in it is shown again with the error and a 4xx status.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
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
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from ..auth.pending import ENROLMENT, SECOND_FACTOR
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
from ..ext import (
    CoatCheck,
    authenticate,
    change_password,
    current_session,
    current_user,
    list_sessions,
    login_required,
    logout_user,
    pending_login,
    reauth_required,
    register_user,
    revoke_other_sessions,
    revoke_session,
    session_assurance,
    start_login,
)
from ..ext.errors import error_response, wants_json
from ..ext.factors import clear_pending
from ..ext.login import allow_unverified_email
from ..ext.mail import send_verification
from ..users import InvalidEmail
from . import security
from .authz import portal_next
from .filters import FILTERS
from .filters import methods_filter as methods_filter  # re-exported
from .forms import flash_here, render_page
from .forms import form_error as _form_error
from .forms import see_other as _see_other
from .forms import sentence as _sentence
from .forms import throttled as _throttled

blueprint = Blueprint("pages", __name__)


@blueprint.record_once
def _register_security_pages(state: BlueprintSetupState) -> None:
    # The second-factor and recovery pages are blueprints of their own, installed with these.
    from . import recovery  # it reads this module's settings

    state.app.register_blueprint(security.blueprint)
    state.app.register_blueprint(recovery.blueprint)
    _FORMS_AGAIN.update(recovery.FORMS_AGAIN)


#: How many of the user's own audit events the account page shows.
RECENT_EVENTS = 10
#: Minimum password length, as enforced by the library's default policy.
MIN_PASSWORD_LENGTH = 12

for _name, _filter in FILTERS.items():  # app-wide: the admin pages use them too
    blueprint.add_app_template_filter(_filter, _name)


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
    send_verification(user)  # when an address was given
    if start_login(user) is not None:  # the policy wants a second factor first
        flash(
            f"Welcome, {user.username}. Your account is ready: set up a second factor to "
            "finish logging in.",
            "warning",
        )
        return _see_other("security.index")
    flash(f"Welcome, {user.username}. Your account is ready and you are logged in.", "success")
    return _see_other("pages.account")


def _login_page(status: int = 200, **context: object) -> Response:
    """Return the first step of /login (it offers a passkey too: it loads the script)."""
    return render_page("login.html", status, webauthn=True, **context)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = portal_next()
    if current_user.is_authenticated:
        return redirect(target or url_for("pages.account"), 303)
    if pending_login(ENROLMENT) is not None and "password" not in request.form:
        return _see_other("security.index")
    if request.method == "POST" and "code" in request.form:
        return security.second_step(target)
    if request.method == "POST" and request.form.get("cancel"):
        clear_pending()
        return _see_other("pages.login", next=target or None)
    if request.method == "GET":
        if pending_login(SECOND_FACTOR) is not None:
            return security.second_step_page(target)
        return _login_page(
            username="",
            next=target,
            logged_out="logged_out" in request.args,
            password_reset="password_reset" in request.args,
        )
    return _password_step(target)


def _password_step(target: str) -> ResponseReturnValue:
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    context = {"username": username, "next": target, "webauthn": True}
    if not username or not password:
        return _form_error("login.html", "Enter your username and password.", 400, **context)
    try:
        user = authenticate(username, password)
    except InvalidCredentials:
        return _form_error("login.html", "Wrong username or password.", 401, **context)
    except Throttled as exc:
        return _throttled("login.html", exc, **context)
    pending = start_login(user, remember=bool(request.form.get("remember")))
    if pending is None:
        flash_here(target, f"Welcome back, {user.username}.")
        return redirect(target or url_for("pages.account"), 303)
    if pending.stage == ENROLMENT:
        security.keep_enrolment_target(target)
        flash("Your account must have a second factor. Set one up to finish logging in.", "warning")
        return _see_other("security.index")
    return _see_other("pages.login", next=target or None)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    # The session, flashes included, is gone: the login page says it instead.
    return _see_other("pages.login", logged_out=1)


@blueprint.get("/account")
@allow_unverified_email  # the e-mail section is where an address gets confirmed
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
        factors=CoatCheck.state().factors.factors(user_id) if user_id else [],
        codes_left=CoatCheck.state().factors.recovery_codes_left(user_id) if user_id else 0,
        profile=users.get(user_id) if user_id else None,
        email_typed=g.get("email_typed", ""),
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
@reauth_required
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
    return render_page(template, 403, **context)


def _view_again(view: Callable[[], ResponseReturnValue]) -> Response:
    g.form_notice = STALE_FORM
    response = current_app.make_response(view())
    response.status_code = 403
    return response


def _login_again() -> ResponseReturnValue:
    target = portal_next()
    if current_user.is_authenticated:  # logged in meanwhile, in another tab
        flash(f"You are logged in as {current_user.username}.", "success")
        return redirect(target or url_for("pages.account"), 303)
    if pending_login(SECOND_FACTOR) is not None and "code" in request.form:
        g.form_notice = STALE_FORM
        return security.second_step_page(target, 403, request.form.get("method"))
    username = request.form.get("username", "").strip()
    return _again("login.html", username=username, next=target, webauthn=True)


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


def _reauth_again() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return _see_other("pages.login", next=url_for("security.reauth"))
    g.form_notice = STALE_FORM
    return security.reauth_page(403)


def _security_again() -> ResponseReturnValue:
    # An old form of /account/security: the page again, up to date (a TOTP code entered
    # too late included: the enrolment is still waiting for one).
    if not current_user.is_authenticated and pending_login(ENROLMENT) is None:
        return _see_other("pages.login", next=url_for("security.index"))
    if request.endpoint == "security.recovery_codes_saved":  # nothing to do again
        return _see_other("security.index")
    waiting = security.totp_enrolment() is not None
    if request.endpoint == "security.totp_confirm" and waiting:
        return _view_again(security.totp)
    return _view_again(security.index)


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
    "admin.enable": _admin_again,
    "admin.reset_factors": _admin_again,
    "security.reauth": _reauth_again,
    "security.totp_begin": _security_again,
    "security.totp_confirm": _security_again,
    "security.rename": _security_again,
    "security.remove": _security_again,
    "security.new_recovery_codes": _security_again,
    "security.recovery_codes_saved": _security_again,
}
