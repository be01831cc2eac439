"""coatcheck's errors as HTTP responses: one shape, mapped in one place.

JSON clients (an ``/api/`` path, or ``Accept: application/json``) get
``{"error": code, "message": text}``; browsers get a small HTML page.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, has_request_context, request
from markupsafe import escape

from ..core.errors import StoreUnavailable

STORE_UNAVAILABLE = "store_unavailable"
_STORE_UNAVAILABLE_MESSAGE = "The session store is unavailable. Please try again shortly."


def wants_json() -> bool:
    """Tell whether the current request comes from an API client."""
    if not has_request_context():
        return True
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str) -> Response:
    """Return the error response for ``code``, as JSON or HTML for this request."""
    if wants_json():
        response = Response(
            current_app.json.dumps({"error": code, "message": message}),
            mimetype="application/json",
        )
    else:
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>{status} {escape(code)}</title>"
            f"<h1>{escape(message)}</h1></html>"
        )
        response = Response(page, mimetype="text/html")
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def store_unavailable_response() -> Response:
    """Return the 503 a request gets when the session store cannot be reached."""
    response = error_response(503, STORE_UNAVAILABLE, _STORE_UNAVAILABLE_MESSAGE)
    response.headers["Retry-After"] = "5"
    return response


def replace_response(response: Response, replacement: Response) -> None:
    """Turn ``response`` into ``replacement`` in place.

    Used when a failure is found after the view has answered (while saving the
    session), where Flask no longer lets an error handler choose the response.
    """
    response.status_code = replacement.status_code
    response.set_data(replacement.get_data())
    response.headers.clear()
    response.headers.extend(replacement.headers)


def _handle_store_unavailable(exc: StoreUnavailable) -> Response:
    current_app.logger.error("session store unavailable: %s", exc)
    return store_unavailable_response()


def register_error_handlers(app: Flask) -> None:
    """Map coatcheck's exceptions to responses on ``app``."""
    app.register_error_handler(StoreUnavailable, _handle_store_unavailable)
