"""coatcheck's cookies: one set of attributes for setting and deleting alike.

Cookies other than the session's are queued during the request and written
by an after-request hook, so the view's response carries them.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, request

from ..core.settings import Settings

_QUEUE = "_coatcheck_cookies"


def cookie_name(settings: Settings, base: str) -> str:
    """Return the name of coatcheck's cookie ``base`` (``__Host-`` prefixed when secure)."""
    return f"__Host-{base}" if settings.cookie_secure else base


def vary_on(response: Response, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` header.

    The same as ``response.vary.add(name)`` without parsing the header into a
    set and writing it back on every request.
    """
    current = response.headers.get("Vary")
    if not current:
        response.headers["Vary"] = name
    elif current.strip() != "*" and name.lower() not in {
        part.strip().lower() for part in current.split(",")
    }:
        response.headers["Vary"] = f"{current}, {name}"


def cookie_attributes(settings: Settings, *, session: bool = False) -> dict[str, Any]:
    """Return the attributes every coatcheck cookie is set and deleted with.

    Only the session cookie (``session=True``) takes ``COATCHECK_COOKIE_DOMAIN``:
    the others stay on the portal's host.
    """
    return {
        "path": "/",
        "domain": (settings.cookie_domain or None) if session else None,
        "secure": settings.cookie_secure,
        "httponly": True,
        "samesite": settings.cookie_samesite,
    }


def single_cookie(name: str) -> str | None:
    """Return the request's cookie ``name``, or ``None`` if absent or sent twice."""
    values = request.cookies.getlist(name)
    return values[0] if len(values) == 1 else None


def queue_cookie(name: str, value: str | None, max_age: int | None = None) -> None:
    """Set (or, with ``value=None``, delete) a cookie on this request's response."""
    queue: dict[str, tuple[str | None, int | None]] = g.setdefault(_QUEUE, {})
    queue[name] = (value, max_age)


def write_queued_cookies(settings: Settings, response: Response) -> Response:
    """Write the queued cookies onto ``response`` (an after-request hook)."""
    queue: dict[str, tuple[str | None, int | None]] = g.pop(_QUEUE, {})
    attributes = cookie_attributes(settings)
    for name, (value, max_age) in queue.items():
        if value is None:
            response.delete_cookie(name, **attributes)
        else:
            response.set_cookie(name, value, max_age=max_age, **attributes)
    return response
