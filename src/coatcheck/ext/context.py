"""Where the Flask layer finds the services of the current application.

The one place that looks anything up: everything below ``ext/`` is handed the
services, and every module of ``ext/`` asks here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g

from ..auth.services import Services
from ..core.errors import CoatcheckError

EXTENSION_KEY = "coatcheck"
_STAMPS = "_coatcheck_stamps"


def services(app: Flask | None = None) -> Services:
    """Return coatcheck's services for ``app`` (default: the current application)."""
    app = app if app is not None else current_app
    try:
        found: Services = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise CoatcheckError("CoatCheck is not initialised on this application") from None
    return found


def note_login_stamp(user_id: Any, stamp: int) -> None:
    """Note the stamp read when ``user_id``'s credentials were checked in this request."""
    g.setdefault(_STAMPS, {})[str(user_id)] = stamp


def login_stamp(user_id: Any) -> int:
    """Return the stamp a login of ``user_id`` in this request is born under.

    The one read before the credentials were checked, if they were checked in
    this request (so a revocation racing the check wins); else the current one.
    """
    noted: dict[str, int] = g.get(_STAMPS, {})
    stamp = noted.get(str(user_id))
    return stamp if stamp is not None else services().stamps.current(str(user_id))
