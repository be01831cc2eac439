"""Where the Flask layer finds the services of the current application.

The one place that looks anything up: everything below ``ext/`` is handed the
services, and every module of ``ext/`` asks here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g

from ..auth.services import Services
from ..core.errors import CoatcheckError, InvalidCredentials
from ..users.models import User as StoredUser

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


def begin_login(user: Any) -> tuple[Any, int]:
    """Return the user to log in and the stamp the login is born under.

    The stamp is the one read when the user's credentials were checked in this
    request (:func:`coatcheck.authenticate`), so a revocation racing the check
    wins. Without one (the application checked the credentials itself) it is
    read now, and a user of coatcheck's own user store is read again after it:
    a disable that landed meanwhile refuses the login, changed roles are used.
    """
    noted: dict[str, int] = g.get(_STAMPS, {})
    stamp = noted.get(str(user.id))
    if stamp is not None:
        return user, stamp
    found = services()
    stamp = found.stamps.current(str(user.id))
    if isinstance(user, StoredUser):
        again = found.users.get(user.id)
        if again is None or again.disabled:
            raise InvalidCredentials()
        user = again
    return user, stamp
