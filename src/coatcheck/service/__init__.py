"""The ready-to-run service: pages, JSON API, inspector, lessons, admin.

It uses only coatcheck's public API. ``create_app`` reads its configuration
from a TOML file (``COATCHECK_CONFIG``), the environment (``COATCHECK_*``,
``SECRET_KEY``) and ``config``; the instance folder (``COATCHECK_INSTANCE``,
default ``./instance``) holds the SQLite files and the generated secret key.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from ..core.errors import CSRFError
from ..ext import CoatCheck
from .config import load_config
from .instance import instance_secret_key


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Return the coatcheck service application."""
    settings = load_config(config)
    instance = settings["COATCHECK_INSTANCE"]
    os.makedirs(instance, mode=0o700, exist_ok=True)
    app = Flask(__name__, instance_path=instance)
    app.config.update(settings)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(instance)
    CoatCheck(app)

    from . import (
        admin,
        api,
        authz,
        http,
        inspect,
        mail_admin,
        mailer,
        openapi,
        ops,
        pages,
        webauthn_api,
    )

    http.install(app)
    authz.install(app)
    # The service says more than the library: where tokens come from, and a
    # stale form is shown again rather than refused with an error page.
    app.register_error_handler(CSRFError, pages.csrf_failed)
    app.context_processor(lambda: {"lessons_enabled": app.config["COATCHECK_LESSONS"]})
    app.register_blueprint(api.blueprint)
    app.register_blueprint(webauthn_api.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(inspect.blueprint)
    app.register_blueprint(mail_admin.blueprint)
    app.register_blueprint(mail_admin.api_blueprint)
    if app.config["COATCHECK_LESSONS"]:
        app.register_blueprint(inspect.lessons)
    if app.config["COATCHECK_METRICS"]:
        from . import metrics

        metrics.install(app)
    mailer.install(app, config)
    return app
