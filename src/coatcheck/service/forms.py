"""What every page with a form does: render, answer a mistake, redirect after a POST.

A page that shows a WebAuthn control renders with ``webauthn=True``: the
template then loads the service's own script (with the CSRF token it sends),
and only that response gets a CSP allowing it. Every other page stays
script-free.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Response, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from ..core.errors import Throttled
from .http import allow_own_script


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    """Return ``template`` rendered as a response; with ``webauthn=True`` it may run the
    service's script."""
    response = Response(render_template(template, **context), status=status)
    if context.get("webauthn"):
        allow_own_script(response)
    return response


def no_store(response: Response) -> Response:
    """Keep ``response`` (a page with a secret on it) out of every cache; return it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(endpoint: str, **values: Any) -> WerkzeugResponse:
    """Redirect the browser to ``endpoint`` with a GET (303 See Other)."""
    return redirect(url_for(endpoint, **values), 303)


def sentence(message: str) -> str:
    """Return a library message as a sentence: capital first letter, final stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def throttled(template: str, exc: Throttled, **context: Any) -> Response:
    """Return ``template`` again, 429, saying how long to wait."""
    minutes = max(1, math.ceil(exc.retry_after / 60))
    unit = "minute" if minutes == 1 else "minutes"
    flash(f"Too many failed attempts. Try again in {minutes} {unit}.", "error")
    response = render_page(template, 429, **context)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def form_error(template: str, message: str, status: int, **context: Any) -> Response:
    """Return ``template`` again with ``message`` (a plain sentence) and a 4xx ``status``."""
    flash(message, "error")
    return render_page(template, status, **context)


def flash_here(target: str, message: str) -> None:
    """Flash a success ``message`` unless the browser goes on to another site (``target``
    an absolute ``rd``): it would wait there for the user's next visit to the portal."""
    if not target or target.startswith("/"):
        flash(message, "success")
