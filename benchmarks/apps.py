"""The three apps on one store: how to build each in-process and serve it with gunicorn.

coatcheck also gets its forward-auth settings (:mod:`.forwardauth`): access
rules, which ``GET /api/me`` never reads, and a trusted proxy network, which
puts ProxyFix in front of every request (a no-op without X-Forwarded-*).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from . import forwardauth, redisdb


@dataclass(frozen=True)
class AppSpec:
    """One app on one store, with a folder of its own for files and logs."""

    name: str
    store: str
    folder: Path
    secret: str

    @property
    def redis_db(self) -> int | None:
        """Return the Redis db the app keeps its sessions in, if any."""
        if self.store != "redis" or self.name == "bare":
            return None
        return redisdb.DB_COATCHECK if self.name == "coatcheck" else redisdb.DB_ANCHOR

    def config(self) -> dict[str, str]:
        """Return the environment that configures the app (its only configuration)."""
        if self.name == "coatcheck":
            store_url = (
                redisdb.url(redisdb.DB_COATCHECK)
                if self.store == "redis"
                else f"sqlite:///{self.folder / 'sessions.db'}"
            )
            return {
                "COATCHECK_STORE_URL": store_url,
                "COATCHECK_DATABASE_URL": f"sqlite:///{self.folder / 'coatcheck.db'}",
                "COATCHECK_INSTANCE": str(self.folder / "instance"),
                "SECRET_KEY": self.secret,
                **forwardauth.config(self.folder),
            }
        if self.name == "anchor":
            env = {
                "ANCHOR_STORE": self.store,
                "ANCHOR_INSTANCE": str(self.folder),
                "ANCHOR_SECRET_KEY": self.secret,
            }
            if self.store == "redis":
                env["ANCHOR_REDIS_URL"] = redisdb.url(redisdb.DB_ANCHOR)
            return env
        return {}

    def wsgi_target(self) -> str:
        """Return the gunicorn application spec (configured by :meth:`config`)."""
        return {
            "coatcheck": "coatcheck.service:create_app()",
            "bare": "benchmarks.bare_app:create_app()",
            "anchor": "benchmarks.anchor_app:create_app()",
        }[self.name]

    def prepare(self) -> None:
        """Create the app's folder and the files its configuration names."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.name == "coatcheck":
            forwardauth.write_config(self.folder)

    def build(self) -> Flask:
        """Return the app, built in this process."""
        self.prepare()
        config = self.config()
        if self.name == "coatcheck":
            service = importlib.import_module("coatcheck.service")
            app: Flask = service.create_app(config)
            return app
        if self.name == "anchor":
            from . import anchor_app

            return anchor_app.create_app(
                self.store,
                instance=config["ANCHOR_INSTANCE"],
                redis_url=config.get("ANCHOR_REDIS_URL"),
                secret_key=self.secret,
            )
        from . import bare_app

        return bare_app.create_app()


def specs(store: str, base: Path, secret: str, names: tuple[str, ...]) -> list[AppSpec]:
    """Return the specs of ``names`` on ``store``, each in a new subfolder of ``base``."""
    return [AppSpec(name, store, base / f"{name}-{store}", secret) for name in names]
