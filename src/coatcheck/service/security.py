"""The pages of SPEC §8: the second step of a login, /account/security, /reauth.

- The second step shows on ``/login`` itself while a password login waits for
  its factor (:func:`second_step_page`, :func:`second_step`).
- ``/account/security`` lists the user's factors and adds, renames and removes
  them, and issues recovery codes; it also serves a login the policy sent to
  enrol a first factor, which confirming that factor completes.
- Adding and removing factors and new recovery codes need a recent check
  (step-up); a stale user is sent to ``/reauth`` and back.
- Recovery codes are shown once, on a page of their own, never again.

Like every page they work without JavaScript, except the WebAuthn controls,
which load the service's own script on the pages that show them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from ..auth.factors import MAX_CODE, RECOVERY_METHOD, TOTP_METHOD, WEBAUTHN_METHOD
from ..auth.pending import SECOND_FACTOR
from ..core.errors import InvalidCode, InvalidCredentials, Throttled
from ..ext import (
    CoatCheck,
    check_second_factor,
    current_session,
    current_user,
    login_required,
    pending_login,
    reauthenticate_with_code,
    reauthenticate_with_password,
    recently_authenticated,
)
from ..ext.factors import (
    factor_owner,
    finish_enrolment,
    pop_recovery_codes,
    require_recent_authentication,
    stash_recovery_codes,
)
from ..ext.login import session_assurance
from ..ext.session import request_client
from .authz import asked_by, follow, portal_next
from .forms import flash_here, no_store, render_page, see_other, throttled

blueprint = Blueprint("security", __name__)

#: The session meta key of a TOTP factor waiting for its first code: its ID and name only
#: (the secret stays sealed in the database and is read back to show the QR code again).
TOTP_ENROLMENT = "totp_enrolment"
#: What a new authenticator app is called unless the user names it.
DEFAULT_TOTP_NAME = "Authenticator app"
WRONG_CODE = "That code is wrong, used already or expired. Check it and try again."


def _code() -> str:
    return request.form.get("code", "").strip()[:MAX_CODE]


def _method(asked: str | None, allowed: tuple[str, ...] | list[str]) -> str:
    """Return the code method a form is for: the one asked for if allowed, else TOTP."""
    codes = [m for m in (TOTP_METHOD, RECOVERY_METHOD) if m in allowed]
    if asked in codes:
        return str(asked)
    return codes[0] if codes else TOTP_METHOD


# -- the second step of a login (on /login) ---------------------------------------------


def second_step_page(target: str, status: int = 200, method: str | None = None) -> Response:
    """Return the second step of the pending login: a code form, and a security-key button."""
    context = _second_step_context(target, method or request.args.get("method"))
    return render_page("login_code.html", status, **context)


def second_step(target: str) -> ResponseReturnValue:
    """Finish the pending login with the code POSTed; answer the form again if it is wrong."""
    if pending_login(SECOND_FACTOR) is None:
        flash("That login took too long. Enter your password again.", "warning")
        return redirect(url_for("pages.login", next=target or None), 303)
    method = request.form.get("method", TOTP_METHOD)
    code = _code()
    if not code:
        flash("Enter the code.", "error")
        return second_step_page(target, 400, method)
    try:
        user = check_second_factor(method, code)
    except InvalidCode:
        flash(WRONG_CODE, "error")
        return second_step_page(target, 401, method)
    except Throttled as exc:
        return throttled("login_code.html", exc, **_second_step_context(target, method))
    except InvalidCredentials:
        flash("This account cannot log in now.", "error")
        return see_other("pages.login")
    flash_here(target, f"Welcome back, {user.username}.")
    return redirect(target or url_for("pages.account"), 303)


def _second_step_context(target: str, method: str | None) -> dict[str, Any]:
    pending = pending_login(SECOND_FACTOR)
    allowed = pending.allowed if pending is not None else ()
    return {
        "next": target,
        "username": pending.username if pending is not None else "",
        "methods": allowed,
        "method": _method(method, allowed),
        "webauthn": WEBAUTHN_METHOD in allowed,
    }


# -- /account/security ------------------------------------------------------------------


def _enrolling() -> bool:
    """Tell whether the request is a login the policy sent to enrol (not logged in yet)."""
    return not current_user.is_authenticated


def _step_up_unless_enrolling() -> None:
    """Sensitive factor changes need a recent check, except while enrolling at login."""
    if not _enrolling():
        require_recent_authentication()


#: The session meta key of where a login that the policy sent to enrol goes once enrolled.
_ENROL_NEXT = "enrol_next"


def keep_enrolment_target(target: str) -> None:
    """Remember where a login sent to enrol was going (a checked ``next`` or ``rd``)."""
    if target:
        current_session().set_meta(_ENROL_NEXT, target)


def _after_enrolment() -> str:
    """Return where a login that enrolled goes: where it was going, else /account."""
    kept = current_session().peek_meta().get(_ENROL_NEXT)
    return (follow(str(kept)) if kept else "") or url_for("pages.account")


def _codes_page(then: str | None = None) -> ResponseReturnValue:
    return see_other("security.recovery_codes", next=then)


@blueprint.get("/account/security")
def index() -> ResponseReturnValue:
    user_id, _ = factor_owner()
    if totp_enrolment() is not None:  # the enrolment page was left: its secret goes
        current_session().set_meta(TOTP_ENROLMENT, None)
    found = CoatCheck.state()
    enrolling = _enrolling()
    fresh = enrolling or recently_authenticated()
    after_passkey = url_for(
        "security.recovery_codes", next=_after_enrolment() if enrolling else None
    )
    return render_page(
        "security.html",
        factors=found.factors.factors(user_id),
        codes_left=found.factors.recovery_codes_left(user_id),
        enrolling=enrolling,
        fresh=fresh,
        after_passkey=after_passkey,
        webauthn=fresh,
    )


@blueprint.post("/account/security/totp")
def totp_begin() -> ResponseReturnValue:
    user_id, username = factor_owner()
    _step_up_unless_enrolling()
    name = request.form.get("name", "").strip() or DEFAULT_TOTP_NAME
    try:
        enrolment = CoatCheck.state().factors.begin_totp(user_id, username, name)
    except ValueError as exc:
        flash(f"That name cannot be used: {exc}.", "error")
        return see_other("security.index")
    # While the enrolment page is open the session names the factor, so that a mistyped
    # code shows the same QR again; confirming or going back to the security page forgets it.
    current_session().set_meta(TOTP_ENROLMENT, {"id": enrolment.id, "name": name})
    return see_other("security.totp")


def totp_enrolment() -> dict[str, Any] | None:
    found = current_session().peek_meta().get(TOTP_ENROLMENT)
    return found if isinstance(found, dict) else None


def _totp_page(enrolment: dict[str, Any], status: int = 200) -> Response:
    user_id, username = factor_owner()
    shown = CoatCheck.state().factors.unconfirmed_totp(user_id, username, int(enrolment["id"]))
    if shown is None:  # confirmed or removed meanwhile
        current_session().set_meta(TOTP_ENROLMENT, None)
        return see_other("security.index")  # type: ignore[return-value]
    groups = " ".join(shown.secret[i : i + 4] for i in range(0, len(shown.secret), 4))
    return no_store(
        render_page(
            "security_totp.html",
            status,
            name=enrolment.get("name", DEFAULT_TOTP_NAME),
            secret_groups=groups,
            otpauth_uri=shown.otpauth_uri,
            qr_svg=shown.qr_svg,
        )
    )


@blueprint.get("/account/security/totp")
def totp() -> ResponseReturnValue:
    factor_owner()
    enrolment = totp_enrolment()
    if enrolment is None:
        return see_other("security.index")
    return _totp_page(enrolment)


@blueprint.post("/account/security/totp/confirm")
def totp_confirm() -> ResponseReturnValue:
    user_id, _ = factor_owner()
    enrolment = totp_enrolment()
    if enrolment is None:
        flash("Start again: add the authenticator app once more.", "warning")
        return see_other("security.index")
    code = _code()
    if not code:
        flash("Enter the code your app shows.", "error")
        return _totp_page(enrolment, 400)
    found = CoatCheck.state()
    try:
        codes = found.factors.confirm_totp(
            user_id, int(enrolment["id"]), code, client=request_client()
        )
    except InvalidCode:
        flash(WRONG_CODE, "error")
        return _totp_page(enrolment, 401)
    current_session().set_meta(TOTP_ENROLMENT, None)
    then = _after_enrolment()
    logged_in = finish_enrolment("otp")
    if logged_in:
        flash("Your authenticator app is set up, and you are logged in.", "success")
    else:
        flash(f"{enrolment.get('name', DEFAULT_TOTP_NAME)} is set up.", "success")
    if logged_in:
        current_session().set_meta(_ENROL_NEXT, None)
    if codes:
        stash_recovery_codes(codes)
        return _codes_page(then if logged_in else None)
    return redirect(then if logged_in else url_for("security.index"), 303)


@blueprint.post("/account/security/<int:factor_id>/rename")
def rename(factor_id: int) -> ResponseReturnValue:
    user_id, _ = factor_owner()
    name = request.form.get("name", "").strip()
    if not name:
        flash("Give it a name.", "error")
        return see_other("security.index")
    try:
        factor = CoatCheck.state().factors.rename(user_id, factor_id, name, client=request_client())
    except ValueError as exc:
        flash(f"That name cannot be used: {exc}.", "error")
        return see_other("security.index")
    if factor is None:
        flash("You have no second factor with that ID.", "error")
    else:
        flash(f"Renamed to “{factor.name}”.", "success")
    return see_other("security.index")


@blueprint.post("/account/security/<int:factor_id>/remove")
def remove(factor_id: int) -> ResponseReturnValue:
    user_id, _ = factor_owner()
    _step_up_unless_enrolling()
    found = CoatCheck.state()
    factors = found.factors.factors(user_id)
    factor = next((f for f in factors if f.id == factor_id), None)
    if factor is None:
        flash("You have no second factor with that ID.", "error")
        return see_other("security.index")
    if request.form.get("confirmed") != "yes":
        last = len(factors) == 1
        question = f"Remove “{factor.name}”? It can no longer be used to log in." + (
            " It is your last second factor: your recovery codes go with it, and logging in "
            "will need your password only."
            if last
            else ""
        )
        return render_page(
            "confirm.html",
            question=question,
            action=url_for("security.remove", factor_id=factor_id),
            button=f"Remove “{factor.name}”",
            fields={},
            cancel=url_for("security.index"),
        )
    found.factors.remove(user_id, factor_id, client=request_client())
    flash(f"“{factor.name}” is removed.", "success")
    return see_other("security.index")


@blueprint.post("/account/security/recovery-codes/new")
def new_recovery_codes() -> ResponseReturnValue:
    user_id, _ = factor_owner()
    _step_up_unless_enrolling()
    found = CoatCheck.state()
    if not found.factors.factors(user_id):
        flash("Set up a second factor first: recovery codes come with it.", "error")
        return see_other("security.index")
    stash_recovery_codes(found.factors.new_recovery_codes(user_id, client=request_client()))
    return _codes_page()


@blueprint.get("/account/security/recovery-codes")
def recovery_codes() -> ResponseReturnValue:
    factor_owner()
    codes = pop_recovery_codes()
    if codes is None:  # shown once already, or none were issued
        return see_other("security.index")
    return no_store(render_page("recovery_codes.html", codes=codes, next=portal_next()))


@blueprint.post("/account/security/recovery-codes/saved")
def recovery_codes_saved() -> ResponseReturnValue:
    target = portal_next()
    current_session().set_meta(_ENROL_NEXT, None)
    return redirect(target or url_for("security.index"), 303)


# -- /reauth: step-up ---------------------------------------------------------------------


def reauth_page(status: int = 200, method: str | None = None) -> Response:
    context = _reauth_context(method or request.args.get("method"))
    return render_page("reauth.html", status, **context)


@blueprint.route("/reauth", methods=["GET", "POST"])
@login_required
def reauth() -> ResponseReturnValue:
    if request.method == "GET":
        return reauth_page()
    target = portal_next()
    password = request.form.get("password", "")
    method = request.form.get("method", TOTP_METHOD)
    code = _code()
    try:
        if password:
            reauthenticate_with_password(password)
        elif code:
            reauthenticate_with_code(method, code)
        else:
            flash("Enter your password or a code.", "error")
            return reauth_page(400, method)
    except (InvalidCredentials, InvalidCode):
        flash("That is not right. Try again." if code else "Wrong password.", "error")
        return reauth_page(401, method)
    except Throttled as exc:
        return throttled("reauth.html", exc, **_reauth_context(method))
    flash_here(target, "Thank you. You can go on.")
    return redirect(target or url_for("pages.account"), 303)


def _reauth_context(method: str | None) -> dict[str, Any]:
    user_id = int(str(current_user.id)) if str(current_user.id).isdigit() else None
    methods = CoatCheck.state().factors.methods(user_id) if user_id is not None else []
    target = portal_next()
    return {
        "next": target,
        # A site's two_factor rule sent an aal 1 session here: only a factor will do.
        "factor_needed": asked_by(target) is not None and session_assurance().aal < 2,
        "methods": methods,
        "method": _method(method, methods),
        "webauthn": WEBAUTHN_METHOD in methods,
    }
