"""The template filters of the pages: times, devices, login methods, audit events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import default_exceptions

from ..auth.assurance import Assurance
from ..core.useragent import describe_user_agent
from ..ext import iso_time

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
    "user_enabled": "Account enabled",
    "factor_added": "Second factor added",
    "factor_removed": "Second factor removed",
    "factor_renamed": "Second factor renamed",
    "factors_reset": "Second factors reset by an admin",
    "recovery_codes_issued": "New recovery codes",
    "recovery_code_used": "Used a recovery code",
    "second_factor_failed": "Wrong second factor",
    "step_up": "Confirmed it was you",
    "passkey_login": "Logged in with a passkey",
    "webauthn_credential_cloned": "Copied security key or passkey detected",
}


def utc_filter(value: float | str | datetime | None) -> str:
    """Return a time as ``2026-11-22 01:02 UTC`` (a Unix time, ISO 8601 text or a datetime)."""
    moment = _as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "—"


def isotime_filter(value: float | str | datetime | None) -> str:
    """Return a time as ISO 8601 in UTC, for ``<time datetime=...>``."""
    moment = _as_datetime(value)
    return iso_time(moment.timestamp()) if moment is not None else ""


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


def methods_filter(assurance: Assurance) -> str:
    """Return how a login was made, e.g. "Password and authenticator code"."""
    names = [METHOD_NAMES.get(m, m) for m in assurance.amr]
    text = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    return text[:1].upper() + text[1:]


def event_label_filter(event: str) -> str:
    """Return an audit event name as people read it."""
    label = EVENT_LABELS.get(event)
    if label is None:
        words = event.replace("_", " ").strip()
        label = words[:1].upper() + words[1:]
    return label


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


#: The filters by the name templates use.
FILTERS: dict[str, Callable[..., Any]] = {
    "utc": utc_filter,
    "isotime": isotime_filter,
    "device": device_filter,
    "methods": methods_filter,
    "event_label": event_label_filter,
    "stock_description": stock_description_filter,
}
