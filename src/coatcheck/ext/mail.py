"""Account mail in a request (SPEC §9): reset, verification, notices, and their templates.

Every mail is written from three templates an application can override by
putting its own in its ``templates/`` folder (its loader is searched first):
``coatcheck/mail/<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``
(autoescaped). Kinds: ``password_reset``, ``verify_email`` and ``notice``
(with ``event``, ``summary`` and ``detail``). Each mail carries only its own
one-time link, built from ``COATCHECK_PUBLIC_URL``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, current_app

from ..auth.emails import NOTICE_MAIL, RESET_MAIL, RenderedMail
from ..users import models as events
from ..users.outbox import OutboxMail
from .context import services
from .session import current_session, request_client

#: Where the built-in templates are found (after the application's own).
templates = Blueprint("coatcheck_mail", __name__, template_folder="templates")

#: What each security notice says happened.
NOTICE_SUMMARIES = {
    events.PASSWORD_CHANGED: "Your password was changed.",
    events.PASSWORD_RESET: "Your password was reset with a link sent to this address, "
    "and every device was logged out.",
    events.EMAIL_CHANGED: "The e-mail address of your account was changed to another one.",
    events.FACTOR_ADDED: "A second factor was added to your account.",
    events.FACTOR_REMOVED: "A second factor was removed from your account.",
    events.FACTORS_RESET: "An administrator removed the second factors of your account.",
    events.RECOVERY_CODE_USED: "One of your recovery codes was used to log in.",
    events.REMEMBER_THEFT: "A copy of a “keep me logged in” cookie of yours was used, so "
    "every device of yours was logged out.",
    events.NEW_DEVICE: "Your account was logged in from a browser and system it had not "
    "been used with before.",
}


def render_mail(kind: str, context: Mapping[str, Any]) -> RenderedMail:
    """Write out a mail of ``kind`` from its templates (the application's, if it has them)."""
    env = current_app.jinja_env
    values = dict(context)
    if kind == NOTICE_MAIL:
        values.setdefault("summary", NOTICE_SUMMARIES.get(str(values.get("event")), ""))
    base = f"coatcheck/mail/{kind}"
    subject = env.get_template(f"{base}.subject.txt").render(values)
    return RenderedMail(
        subject=" ".join(subject.split()),  # one line: no header can be smuggled in
        text=env.get_template(f"{base}.txt").render(values),
        html=env.get_template(f"{base}.html").render(values),
    )


def resolvers(app: Flask | None = None) -> dict[str, Callable[[OutboxMail], OutboxMail | None]]:
    """Return what turns queued requests into mails at send time: they run in an app
    context of ``app`` (default: the current app), whose templates they render."""
    mail = services(app).account_mail
    return {
        RESET_MAIL: lambda queued: mail.resolve_reset(queued, render_mail),
        NOTICE_MAIL: lambda queued: mail.resolve_notice(queued, render_mail),
    }


def request_password_reset(login: str) -> None:
    """Queue a password reset for ``login`` (username or address); the same for any login.

    :raise Throttled: past 20 requests from this client address in 15 minutes.
    """
    services().account_mail.request_reset(login, client=request_client())


def reset_password(token: str, new_password: str) -> Any:
    """Set a new password with a reset link; every session of the user ends. Return the user.

    This request's own session, if any, is not logged in by it: the user logs in
    again, with their second factor if they have one.
    """
    return services().account_mail.reset_password(token, new_password, client=request_client())


def confirm_email(token: str) -> Any:
    """Confirm an address with a verification link; return the user."""
    user = services().account_mail.confirm_email(token, client=request_client())
    session = current_session()
    if session.user_id == str(user.id):
        session.set_meta("email", user.email)
        session.set_meta("email_verified", True)
    return user


def send_verification(user: Any, email: str | None = None) -> None:
    """Mail a verification link for ``email`` (default: the user's own address)."""
    address = email or user.email
    if address:
        services().account_mail.send_verification(user, address, render_mail)
