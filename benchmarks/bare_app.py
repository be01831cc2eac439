"""The ceiling: bare Flask answering ``GET /api/me`` with no session, auth or store.

The JSON has the shape and size of coatcheck's answer. The other routes exist
only so that every app goes through the same login steps; they do nothing.

Under gunicorn: ``gunicorn 'benchmarks.bare_app:create_app()'``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

USER = {"id": 1, "username": "benchuser", "roles": []}
SESSION = {
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-01T00:30:00Z",
    "handle": "0" * 32,
    "last_seen_at": "2026-01-01T00:00:00Z",
}


def create_app() -> Flask:
    """Return the bare app."""
    app = Flask(__name__)

    @app.get("/")
    def index() -> Response:
        return jsonify(app="bare")

    @app.get("/api/csrf")
    def csrf() -> Response:
        return jsonify(csrf_token="bare")  # noqa: S106 - not a secret

    @app.post("/api/register")
    def register() -> tuple[Response, int]:
        return jsonify(user=USER), 201

    @app.get("/api/me")
    def me() -> Response:
        return jsonify(user=USER, session=SESSION)

    return app
