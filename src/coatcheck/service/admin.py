"""The admin area: users and their roles, live sessions, the audit log.

Every route needs the ``admin`` role. Actions are POSTed forms (CSRF-checked)
that flash their outcome and redirect back to the page. The ones that take
something away (disable, log out everywhere, remove a role) first answer
with a confirmation page whose form POSTs the same action again with
``confirmed=yes``: no script needed. No change may leave no active admin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as WerkzeugResponse

from ..auth.admins import ensure_an_admin_remains
from ..core.errors import LastAdmin
from ..ext import (
    CoatCheck,
    all_sessions,
    current_user,
    disable_user,
    enable_user,
    logout_user,
    reauth_required,
    revoke_all_sessions,
    roles_required,
    set_user_roles,
)
from ..ext.session import request_client
from ..users import User

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

#: Rows per page of the users table and of the audit log.
PAGE_SIZE = 50
#: The most recently seen sessions shown.
SESSIONS_SHOWN = 200
ADMIN_ROLE = "admin"


#: How each way of logging in reads in the audit log.
_VIA = {
    "password": "with a password",
    "remember": "by a remember-me cookie",
    "token": "for an API token",
}
#: Which limit a throttled login reached.
_SCOPES = {
    "pair": "too many failures for this account from this address",
    "account": "too many failures for this account",
    "address": "too many failures from this address",
    "register": "too many registrations from this address",
}

#: How each second-factor method reads ("with a recovery code"); both the methods of a
#: form and the ``amr`` values a step-up records.
_METHODS = {
    "pwd": "a password",
    "totp": "an authenticator code",
    "otp": "an authenticator code",
    "recovery": "a recovery code",
    "webauthn": "a security key",
    "passkey": "a passkey",
}
#: The order of an event's details in a sentence (a store may not keep the order written).
_ORDER = {
    key: n
    for n, key in enumerate(
        ("via", "remember", "scope", "type", "name", "before", "after", "method", "count", "left")
        + ("factors_removed", "sessions_revoked", "sent", "stored")
    )
}
#: Details kept for the record that a sentence leaves out.
_UNSAID = frozenset({"factor_id", "passkey"})


@blueprint.app_template_filter("audit_detail")
def audit_detail(detail: Mapping[str, Any] | None) -> str:
    """Return an audit event's detail as people read it ("With a password; remembered.")."""
    if not detail:
        return ""
    parts: list[str] = []
    for key in sorted(detail, key=lambda key: (_ORDER.get(key, len(_ORDER)), key)):
        part = _detail_part(key, detail[key], detail)
        if part:
            parts.append(part)
    text = "; ".join(parts)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _count(value: Any, noun: str) -> str:
    return f"{value} {noun}{'' if value == 1 else 's'}"


def _roles(value: Any) -> str:
    roles = [str(role) for role in value] if isinstance(value, list | tuple) else [str(value)]
    return ", ".join(roles) or "none"


def _factor_part(key: str, value: Any, detail: Mapping[str, Any]) -> str | None:
    """Return the words of a second-factor detail, ``None`` for a key of another kind."""
    if key in _UNSAID:
        return ""
    if key == "type":
        if value == "totp":
            return "authenticator app"
        return "passkey" if detail.get("passkey") else "security key"
    if key == "name":
        return f"“{value}”"
    if key in ("before", "after") and isinstance(value, str):  # a factor's renaming
        return f"{'was' if key == 'before' else 'now'} “{value}”"
    if key == "method":
        return f"with {_METHODS.get(str(value), value)}"
    if key == "count":
        return f"{_count(value, 'code')} issued"
    if key == "left":
        return f"{_count(value, 'code')} left"
    if key == "factors_removed":
        return f"{_count(value, 'factor')} removed"
    if key == "sent":
        return f"signature counter {value}"
    if key == "stored":
        return f"expected more than {value}"
    return None


def _detail_part(key: str, value: Any, detail: Mapping[str, Any]) -> str:
    factor = _factor_part(key, value, detail)
    if factor is not None:
        return factor
    if key == "via":
        return _VIA.get(str(value), f"via {value}")
    if key == "remember":
        return "kept logged in on the device" if value and detail.get("via") != "remember" else ""
    if key == "scope":
        return _SCOPES.get(str(value), f"limit: {value}")
    if key in ("revoked", "sessions_revoked"):
        return f"{_count(value, 'session')} ended"
    if key == "before":
        return f"roles were {_roles(value)}"
    if key == "after":
        return f"now {_roles(value)}"
    if key in ("handle", "family"):
        return f"{'token family' if key == 'family' else 'session'} {value}"
    words = key.replace("_", " ")
    shown = _roles(value) if isinstance(value, list | tuple) else value
    return f"{words}: {shown}"


def _page(name: str, total: int) -> tuple[int, int]:
    """Return the page asked for in the query string (clamped) and the page count."""
    pages = max(1, math.ceil(total / PAGE_SIZE))
    asked = request.args.get(name, default=1, type=int) or 1
    return min(max(1, asked), pages), pages


def _back() -> WerkzeugResponse:
    return redirect(url_for("admin.index"), 303)


def _is_me(user_id: int) -> bool:
    return str(current_user.id) == str(user_id)


def _confirmed() -> bool:
    return request.form.get("confirmed") == "yes"


def _confirm(user: User, action: str, question: str, button: str, **fields: str) -> str:
    """Return the page asking to confirm ``action`` (POSTed again with ``confirmed=yes``)."""
    return render_template(
        "confirm.html",
        user=user,
        action=url_for(action, user_id=user.id),
        question=question,
        button=button,
        fields=fields,
    )


def _keeps_an_admin(user_id: int, **change: object) -> bool:
    try:
        ensure_an_admin_remains(CoatCheck.state(), user_id, **change)  # type: ignore[arg-type]
    except LastAdmin as exc:
        flash(str(exc), "error")
        return False
    return True


def _target(user_id: int) -> User | None:
    user = CoatCheck.state().users.get(user_id)
    if user is None:
        flash(f"There is no user with ID {user_id}.", "error")
    return user


@blueprint.get("")
@roles_required(ADMIN_ROLE)
def index() -> ResponseReturnValue:
    users = CoatCheck.state().users
    users_page, users_pages = _page("users_page", users.count_users())
    audit_total = users.count_events()
    page, pages = _page("page", audit_total)
    sessions = all_sessions(SESSIONS_SHOWN)
    names: dict[str, str] = {}
    for device in sessions:
        if device.user_id and device.user_id not in names and device.user_id.isdigit():
            owner = users.get(int(device.user_id))
            names[device.user_id] = owner.username if owner is not None else "?"
    listed = users.list_users(offset=(users_page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return render_template(
        "admin.html",
        users=listed,
        kinds=users.factors.kinds(u.id for u in listed),
        users_page=users_page,
        users_pages=users_pages,
        sessions=sessions,
        sessions_shown=SESSIONS_SHOWN,
        names=names,
        events=users.list_events(offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE),
        audit_total=audit_total,
        page=page,
        pages=pages,
    )


@blueprint.post("/users/<int:user_id>/roles")
@roles_required(ADMIN_ROLE)
@reauth_required
def set_roles(user_id: int) -> ResponseReturnValue:
    user = _target(user_id)
    if user is None:
        return _back()
    text = request.form.get("roles", "")
    roles = sorted({role.strip().lower() for role in text.split(",") if role.strip()})
    if not _keeps_an_admin(user_id, roles=roles):
        return _back()
    removed = sorted(set(user.roles) - set(roles))
    if removed and not _confirmed():
        return _confirm(
            user,
            "admin.set_roles",
            f"Take the role{'s' if len(removed) > 1 else ''} {', '.join(removed)} from "
            f"{user.username}? Their live sessions lose it at once.",
            "Remove the role" + ("s" if len(removed) > 1 else ""),
            roles=", ".join(roles),
        )
    try:
        updated = set_user_roles(user_id, roles)
    except ValueError as exc:
        flash(f"Roles not changed: {exc}.", "error")
        return _back()
    shown = ", ".join(updated.roles) or "none"
    flash(f"Roles of {updated.username} are now: {shown}.", "success")
    if _is_me(user_id) and ADMIN_ROLE not in updated.roles:
        return redirect(url_for("pages.account"), 303)
    return _back()


@blueprint.post("/users/<int:user_id>/disable")
@roles_required(ADMIN_ROLE)
@reauth_required
def disable(user_id: int) -> ResponseReturnValue:
    user = _target(user_id)
    if user is None:
        return _back()
    if not _keeps_an_admin(user_id, disable=True):
        return _back()
    if _is_me(user_id):
        flash("You cannot disable your own account.", "error")
        return _back()
    if user.disabled:
        flash(f"{user.username} is already disabled.", "warning")
        return _back()
    if not _confirmed():
        return _confirm(
            user,
            "admin.disable",
            f"Disable {user.username}? Every session of theirs ends and they cannot log in "
            "until an admin enables them again.",
            f"Disable {user.username}",
        )
    disable_user(user_id)
    flash(f"{user.username} is disabled and logged out everywhere.", "success")
    return _back()


@blueprint.post("/users/<int:user_id>/logout-everywhere")
@roles_required(ADMIN_ROLE)
@reauth_required
def logout_everywhere(user_id: int) -> ResponseReturnValue:
    user = _target(user_id)
    if user is None:
        return _back()
    if not _confirmed():
        return _confirm(
            user,
            "admin.logout_everywhere",
            f"Log {user.username} out everywhere? Every session, remember-me cookie and "
            "token of theirs ends; they can log in again.",
            "Log out everywhere",
        )
    count = revoke_all_sessions(user_id)
    if _is_me(user_id):
        logout_user()
        return redirect(url_for("pages.login", logged_out=1), 303)
    noun = "session" if count == 1 else "sessions"
    flash(f"{user.username} is logged out everywhere ({count} {noun} ended).", "success")
    return _back()


@blueprint.post("/users/<int:user_id>/enable")
@roles_required(ADMIN_ROLE)
@reauth_required
def enable(user_id: int) -> ResponseReturnValue:
    user = _target(user_id)
    if user is None:
        return _back()
    if not user.disabled:
        flash(f"{user.username} is not disabled.", "warning")
        return _back()
    enable_user(user_id)
    flash(f"{user.username} is enabled again and can log in.", "success")
    return _back()


@blueprint.post("/users/<int:user_id>/reset-2fa")
@roles_required(ADMIN_ROLE)
@reauth_required
def reset_factors(user_id: int) -> ResponseReturnValue:
    user = _target(user_id)
    if user is None:
        return _back()
    found = CoatCheck.state()
    if not found.factors.factors(user_id):
        flash(f"{user.username} has no second factor to reset.", "warning")
        return _back()
    if not _confirmed():
        return _confirm(
            user,
            "admin.reset_factors",
            f"Reset {user.username}'s second factors? Every authenticator app, passkey, "
            "security key and recovery code of theirs is removed, and every session of theirs "
            "ends. Do this only once you are sure who asked for it.",
            "Reset second factors",
        )
    removed = found.factors.reset(user_id, client=request_client())
    if _is_me(user_id):
        logout_user()
        return redirect(url_for("pages.login", logged_out=1), 303)
    noun = "factor" if removed == 1 else "factors"
    flash(
        f"{user.username}'s second factors are reset ({removed} {noun} removed); "
        "they are logged out everywhere.",
        "success",
    )
    return _back()
