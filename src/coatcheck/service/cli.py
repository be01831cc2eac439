"""The ``coatcheck`` command."""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask


@click.group()
def main() -> None:
    """coatcheck: secure sessions and login for Flask."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="gunicorn worker processes.")
@click.option(
    "--instance",
    envvar="COATCHECK_INSTANCE",
    default="instance",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the SQLite files and the generated secret.",
)
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
def serve(host: str, port: int, workers: int, instance: str, dev: bool) -> None:
    """Start the service."""
    from . import create_app

    os.environ["COATCHECK_INSTANCE"] = os.path.abspath(instance)
    if dev:
        create_app().run(host=host, port=port, debug=True)
        return
    _Gunicorn(create_app, {"bind": f"{host}:{port}", "workers": workers}).run()


def _gunicorn_base() -> Any:
    from gunicorn.app.base import BaseApplication

    return BaseApplication


class _Gunicorn(_gunicorn_base()):  # type: ignore[misc]
    """gunicorn running our app factory in each worker."""

    def __init__(self, factory: Any, options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = {"accesslog": "-", **options}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        app: Flask = self.factory()
        return app
