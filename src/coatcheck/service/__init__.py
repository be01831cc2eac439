"""The ready-to-run service. For now a small demo of server-side sessions.

``create_app`` reads ``COATCHECK_*`` and ``SECRET_KEY`` from the environment,
then ``config``; the instance folder (SQLite files) is ``COATCHECK_INSTANCE``
or ``./instance``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, render_template_string, session

from ..ext import CoatCheck, current_session
from .instance import instance_secret_key

_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coatcheck</title>
<style>body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
padding: 0 1rem }</style>
<body>
<h1>coatcheck</h1>
<p>This is visit number <strong>{{ visits }}</strong> in this browser session.</p>
<p>Your browser holds only a random ticket, the <code>{{ cookie_name }}</code> cookie
(HttpOnly, so scripts on this page cannot read it). The count lives on the server,
in a record stored under the SHA-256 of that ticket.</p>
<p>Public handle of this session: <code>{{ handle }}</code></p>
</body></html>
"""


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Return the coatcheck service application."""
    instance = os.environ.get("COATCHECK_INSTANCE", "instance")
    if config and config.get("COATCHECK_INSTANCE"):
        instance = str(config["COATCHECK_INSTANCE"])
    instance = os.path.abspath(instance)
    os.makedirs(instance, mode=0o700, exist_ok=True)
    app = Flask(__name__, instance_path=instance)
    for key, value in os.environ.items():
        if key.startswith("COATCHECK_") or key == "SECRET_KEY":
            app.config[key] = value
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(instance)
    cc = CoatCheck(app)

    @app.get("/")
    def index() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return render_template_string(
            _PAGE,
            visits=session["visits"],
            cookie_name=cc.state().settings.session_cookie_name,
            handle=current_session().handle or "(assigned when this response is sent)",
        )

    @app.get("/api/session")
    def api_session() -> Any:
        current = current_session()
        return jsonify(
            visits=session.get("visits", 0), handle=None if current.new else current.handle
        )

    return app
