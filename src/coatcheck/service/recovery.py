"""The pages of SPEC §9: a forgotten password, a reset link, a verification link, the
e-mail section of /account.

- ``/forgot`` answers the same for every login; the mail (if any) is written
  by the background sender.
- ``/reset/<token>`` checks its link without spending it before showing the
  form; the POST spends it, and every session of the user ends: they log in
  again, through their second factor if they have one.
- ``/verify-email/<token>`` changes nothing on GET (mail scanners open links):
  a button POSTs the confirmation.
- The pages with a secret in their URL are sent with ``Cache-Control: no-store``
  and ``Referrer-Policy: strict-origin``: a ``Referer`` never carries more than
  the origin, so the secret leaks to no one. (Not ``no-referrer``: under it
  browsers send ``Origin: null`` with the page's own form, which the CSRF check
  refuses, as it should.)

Like every page they work without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, flash, g, request, url_for
from flask.typing import ResponseReturnValue

from ..auth.emails import MAX_LOGIN, RESET_LIFETIME, InvalidMailToken
from ..core.errors import PasswordRejected, Throttled
from ..ext import CoatCheck, current_user, login_required
from ..ext.context import services
from ..ext.factors import require_recent_authentication
from ..ext.login import allow_unverified_email
from ..ext.mail import confirm_email, request_password_reset, reset_password, send_verification
from ..users import InvalidEmail
from ..users.validation import validate_email
from .forms import form_error, no_store, render_page, see_other, sentence
from .pages import MIN_PASSWORD_LENGTH, STALE_FORM

blueprint = Blueprint("recovery", __name__)

#: What /forgot says after any request, whether or not the account exists.
RESET_REQUESTED = (
    "If that account exists and has an e-mail address, a link to choose a new password is "
    f"on its way. It works for {int(RESET_LIFETIME // 60)} minutes."
)
#: What a reset or verification link that cannot be used shows.
INVALID_LINK = "This link is unknown, used already or expired."
#: The Referer of the pages with a secret in their URL: the origin alone, never the path.
REFERRER_POLICY = "strict-origin"
#: The endpoints whose URL holds a one-time secret.
_SECRET_URLS = frozenset({"recovery.reset", "recovery.verify_email"})


@blueprint.context_processor
def _page_texts() -> dict[str, object]:
    return {"min_password_length": MIN_PASSWORD_LENGTH, "reset_requested": RESET_REQUESTED}


@blueprint.after_request
def _keep_the_link_to_ourselves(response: Response) -> Response:
    # The token is in the URL: no Referer carries it (the origin at most), no cache keeps it.
    if request.endpoint in _SECRET_URLS:
        response.headers["Referrer-Policy"] = REFERRER_POLICY
        no_store(response)
    return response


# -- /forgot ------------------------------------------------------------------------------


@blueprint.route("/forgot", methods=["GET", "POST"])
def forgot() -> ResponseReturnValue:
    if request.method == "GET":
        return render_page("forgot.html", login="", sent="sent" in request.args)
    login = request.form.get("login", "").strip()
    if not login:
        return form_error("forgot.html", "Enter your username or e-mail address.", 400, login="")
    if len(login) > MAX_LOGIN:
        message = f"That is longer than any username or address ({MAX_LOGIN} characters)."
        return form_error("forgot.html", message, 400, login="")
    try:
        request_password_reset(login)
    except Throttled as exc:
        return _too_many(exc, login)
    # The same answer for every login: the page after the redirect is the same too.
    return see_other("recovery.forgot", sent=1)


def _too_many(exc: Throttled, login: str) -> Response:
    minutes = max(1, math.ceil(exc.retry_after / 60))
    unit = "minute" if minutes == 1 else "minutes"
    flash(f"Too many requests from your address. Try again in {minutes} {unit}.", "error")
    response = render_page("forgot.html", 429, login=login, sent=False)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


# -- /reset/<token> -----------------------------------------------------------------------


def _reset_page(token: str, status: int = 200) -> Response:
    try:
        _, user = services().account_mail.reset_token(token)
    except InvalidMailToken:
        return render_page("reset.html", 400, invalid=True, token=token)
    return render_page("reset.html", status, invalid=False, token=token, username=user.username)


@blueprint.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseReturnValue:
    if request.method == "GET":
        return _reset_page(token)
    new = request.form.get("new_password", "")
    if not new:
        flash("Enter a new password.", "error")
        return _reset_page(token, 400)
    if new != request.form.get("new_password_confirm", ""):
        flash("The two passwords do not match.", "error")
        return _reset_page(token, 400)
    try:
        reset_password(token, new)
    except InvalidMailToken:
        return render_page("reset.html", 400, invalid=True, token=token)
    except PasswordRejected as exc:
        flash(exc.message, "error")
        return _reset_page(token, 400)
    # Every session of the user ended, maybe this one: the login page says it, not a flash.
    return see_other("pages.login", password_reset=1)


# -- /verify-email/<token> ----------------------------------------------------------------


@blueprint.route("/verify-email/<token>", methods=["GET", "POST"])
@allow_unverified_email
def verify_email(token: str) -> ResponseReturnValue:
    if request.method == "GET":  # a scanner's prefetch must not confirm anything
        return render_page("verify_email.html", token=token, state="ask")
    try:
        user = confirm_email(token)
    except InvalidMailToken:
        return render_page("verify_email.html", 400, token=token, state="invalid")
    return render_page("verify_email.html", token=token, state="done", email=user.email)


# -- the e-mail section of /account -------------------------------------------------------


def _own_user() -> Any:
    raw = str(current_user.id)
    user = CoatCheck.state().users.get(int(raw)) if raw.isdigit() else None
    if user is None:
        flash("This account has no e-mail settings.", "error")
    return user


@blueprint.post("/account/email/verify")
@allow_unverified_email
@login_required
def resend() -> ResponseReturnValue:
    user = _own_user()
    if user is None:
        return _back_to_email()
    if not user.email:
        flash("Your account has no e-mail address: add one below.", "error")
    elif user.email_verified:
        flash(f"{user.email} is confirmed already.", "success")
    else:
        send_verification(user)
        flash(f"A link to confirm {user.email} is on its way. Open it to confirm.", "success")
    return _back_to_email()


@blueprint.post("/account/email")
@allow_unverified_email
@login_required
def change_email() -> ResponseReturnValue:
    require_recent_authentication()  # a stale user goes to /reauth and back to /account
    user = _own_user()
    if user is None:
        return _back_to_email()
    address = request.form.get("email", "").strip()
    if not address:
        return _account_again("Enter the new address.", address)
    try:
        validate_email(address)
    except InvalidEmail as exc:
        return _account_again(sentence(f"That address cannot be used: {exc}"), address)
    if user.email_verified and (user.email or "").lower() == address.lower():
        flash(f"{user.email} is your address already.", "success")
        return _back_to_email()
    send_verification(user, address)
    if user.email and (user.email or "").lower() != address.lower():
        stays = f"your address stays {user.email}"
    elif user.email:
        stays = "your address stays unconfirmed"
    else:
        stays = "your account has no address"
    flash(f"A link was sent to {address}. Until you open it, {stays}.", "success")
    return _back_to_email()


@blueprint.post("/account/notices")
@allow_unverified_email
@login_required
def notices() -> ResponseReturnValue:
    user = _own_user()
    if user is not None:
        wanted = bool(request.form.get("new_device"))
        CoatCheck.state().users.set_notify_new_device(user.id, wanted)
        if wanted:
            flash("You will get a mail when your account is used from a new device.", "success")
        else:
            flash("No more mails about new devices.", "success")
    return _back_to_email()


def _back_to_email() -> ResponseReturnValue:
    # No #email anchor: the outcome is flashed at the top of the page, where it is seen.
    return see_other("pages.account")


def _account_again(message: str, address: str, status: int = 400) -> ResponseReturnValue:
    """Show /account again with ``message`` and the address typed (a form with a mistake)."""
    from .pages import account

    flash(message, "error")
    g.email_typed = address
    response = current_app.make_response(account())
    response.status_code = status
    return response


# -- old forms (a CSRF token from before a login or logout in another tab) ----------------


def _forgot_again() -> ResponseReturnValue:
    g.form_notice = STALE_FORM
    return render_page("forgot.html", 403, login=request.form.get("login", "").strip()[:MAX_LOGIN])


def _reset_again() -> ResponseReturnValue:
    g.form_notice = STALE_FORM
    return _reset_page(str((request.view_args or {}).get("token", "")), 403)


def _verify_again() -> ResponseReturnValue:
    g.form_notice = STALE_FORM
    token = str((request.view_args or {}).get("token", ""))
    return render_page("verify_email.html", 403, token=token, state="ask")


def _account_forms_again() -> ResponseReturnValue:
    from .pages import account

    if not current_user.is_authenticated:
        return see_other("pages.login", next=url_for("pages.account"))
    g.form_notice = STALE_FORM
    response = current_app.make_response(account())
    response.status_code = 403
    return response


#: What an old form of these pages gets instead of an error page (see pages.csrf_failed).
FORMS_AGAIN: dict[str, Callable[[], ResponseReturnValue | None]] = {
    "recovery.forgot": _forgot_again,
    "recovery.reset": _reset_again,
    "recovery.verify_email": _verify_again,
    "recovery.resend": _account_forms_again,
    "recovery.change_email": _account_forms_again,
    "recovery.notices": _account_forms_again,
}
