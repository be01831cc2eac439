"""The anchor: what a Flask developer would assemble instead of coatcheck.

Flask-Login + Flask-Session (server-side sessions) + Flask-WTF ``CSRFProtect``
+ bcrypt, users in a Flask-SQLAlchemy table, set up the careful way and as
close to coatcheck's defaults as these libraries allow: a ``__Host-session``
cookie (Secure, HttpOnly, SameSite=Lax, no Max-Age), a 30-minute idle lifetime
in the store, a new session ID at login, ``Cache-Control: no-store`` for users,
SQLite in WAL mode with ``synchronous=NORMAL`` (as coatcheck's SQLite store).

Stores: ``redis`` (Flask-Session's Redis backend) or ``sqlite`` (its SQLAlchemy
backend, a ``sessions`` table in the users' SQLite file).

Under gunicorn: ``gunicorn 'benchmarks.anchor_app:create_app()'``, configured
by ``ANCHOR_STORE``, ``ANCHOR_INSTANCE``, ``ANCHOR_REDIS_URL`` and
``ANCHOR_SECRET_KEY``.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any

import bcrypt
import redis
from flask import Flask, Response, jsonify, request, session
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_session import Session
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _models() -> tuple[SQLAlchemy, Any]:
    """Return a new Flask-SQLAlchemy object and its User model (one per app)."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        username: Mapped[str] = mapped_column(unique=True)
        password_hash: Mapped[bytes]

        def as_json(self) -> dict[str, Any]:
            return {"id": self.id, "username": self.username, "roles": []}

    return db, User


def _error(status: int, code: str) -> tuple[Response, int]:
    return jsonify(error=code), status


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_app(
    store: str | None = None,
    *,
    instance: str | None = None,
    redis_url: str | None = None,
    secret_key: str | None = None,
) -> Flask:
    """Return the anchor app on the ``redis`` or ``sqlite`` session store."""
    store = store or os.environ.get("ANCHOR_STORE", "sqlite")
    if store not in ("redis", "sqlite"):
        raise ValueError(f"store must be redis or sqlite, not {store!r}")
    folder = os.path.abspath(instance or os.environ["ANCHOR_INSTANCE"])
    os.makedirs(folder, exist_ok=True)
    app = Flask(__name__, instance_path=folder)
    app.config.update(
        SECRET_KEY=secret_key or os.environ.get("ANCHOR_SECRET_KEY") or secrets.token_hex(32),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{os.path.join(folder, 'anchor.db')}",
        SESSION_COOKIE_NAME="__Host-session",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_PERMANENT=False,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),
        SESSION_KEY_PREFIX="session:",
        SESSION_ID_LENGTH=32,
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
    )
    db, User = _models()
    db.init_app(app)
    with app.app_context():
        event.listen(db.engine, "connect", _sqlite_pragmas)
        db.create_all()
    if store == "redis":
        url = redis_url or os.environ["ANCHOR_REDIS_URL"]
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url))
    else:
        app.config.update(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=db)
    Session(app)
    CSRFProtect(app)
    manager = LoginManager(app)

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> Any:
        return db.session.get(User, int(user_id))

    @manager.unauthorized_handler  # type: ignore[untyped-decorator]
    def unauthorized() -> tuple[Response, int]:
        return _error(401, "unauthenticated")

    @app.errorhandler(CSRFError)
    def csrf_failed(_exc: CSRFError) -> tuple[Response, int]:
        return _error(403, "csrf_failed")

    @app.after_request
    def no_store(response: Response) -> Response:
        if current_user.is_authenticated:
            response.headers["Cache-Control"] = "no-store"
        return response

    def credentials() -> tuple[str, bytes]:
        body = request.get_json(silent=True) or {}
        return str(body.get("username", "")), str(body.get("password", "")).encode()[:72]

    def start_session(user: Any) -> Response:
        app.session_interface.regenerate(session)  # type: ignore[attr-defined]
        login_user(user)
        return jsonify(user=user.as_json())

    @app.get("/")
    def index() -> Response:
        return jsonify(app="anchor", authenticated=current_user.is_authenticated)

    @app.get("/api/csrf")
    def csrf() -> Response:
        return jsonify(csrf_token=generate_csrf())

    @app.post("/api/register")
    def register() -> tuple[Response, int]:
        username, password = credentials()
        if not username or len(password) < 12:
            return _error(400, "invalid")
        user = User(username=username, password_hash=bcrypt.hashpw(password, bcrypt.gensalt()))
        db.session.add(user)
        db.session.commit()
        return start_session(user), 201

    @app.post("/api/login")
    def login() -> Response | tuple[Response, int]:
        username, password = credentials()
        user = db.session.execute(db.select(User).filter_by(username=username)).scalar()
        if user is None or not bcrypt.checkpw(password, user.password_hash):
            return _error(401, "invalid_credentials")
        return start_session(user)

    @app.get("/api/me")
    @login_required  # type: ignore[untyped-decorator]
    def me() -> Response:
        return jsonify(user=current_user.as_json())

    return app
