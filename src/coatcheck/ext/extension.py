"""The Flask extension: ``CoatCheck(app)`` or ``cc.init_app(app)``.

The composition root: it builds the services once from the settings and
wires the Flask layer's modules to them. Nothing in ``ext/`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from ..auth.services import Services, build_services
from ..core.clock import Clock, system_clock
from ..core.passwords import PasswordHasher
from ..core.settings import Settings
from ..stores.base import SessionStore
from . import cookies, csrf
from .client import TrustedProxies
from .context import EXTENSION_KEY, services
from .errors import UNAUTHORIZED_KEY, register_error_handlers
from .login import current_user
from .mail import templates as mail_templates
from .session import (
    SESSION_ENVIRON_KEY,
    ServerSession,
    ServerSessionInterface,
    current_session,
    request_client,
)
from .signals import security_event
from .tokens import mark_bearer_response

if TYPE_CHECKING:
    from ..users import UserStore

_FLASK_COOKIE_KEYS = (
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "SESSION_COOKIE_HTTPONLY",
)
_FLASK_DEFAULTS = {k: Flask.default_config.get(k) for k in _FLASK_COOKIE_KEYS}


class CoatCheck:
    """Secure server-side sessions, login and CSRF protection for Flask.

    :param app: the application, or ``None`` to call :meth:`init_app` later.
    :param store: a session store; by default ``COATCHECK_STORE_URL`` picks one.
    :param users: a user store; by default ``COATCHECK_DATABASE_URL`` picks one.
    :param hasher: the password hasher (tests pass ``PasswordHasher.fast_for_tests()``).
    :param clock: where time comes from (tests pass a manual clock).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        store: SessionStore | None = None,
        users: UserStore | None = None,
        hasher: PasswordHasher | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._users = users
        self._hasher = hasher
        self.clock = clock
        self._user_loader: Callable[[str], Any] | None = None
        self._unauthorized: Callable[[], Any] | None = None
        self._apps: list[Flask] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install coatcheck on ``app``; check every setting now."""
        settings = Settings.from_config(app.config, instance_path=app.instance_path)
        built = build_services(
            settings,
            secret_key=app.config.get("SECRET_KEY"),
            fallbacks=app.config.get("SECRET_KEY_FALLBACKS") or (),
            store=self._store,
            users=self._users,
            hasher=self._hasher,
            clock=self.clock,
            user_loader=self._user_loader,
        )

        def signal(event: str, fields: dict[str, Any]) -> None:
            security_event.send(
                built, event=event, user_id=fields["user_id"], username=fields["username"]
            )

        built.listeners.append(signal)
        self._apps.append(app)
        app.extensions[EXTENSION_KEY] = built
        if self._unauthorized is not None:
            app.extensions[UNAUTHORIZED_KEY] = self._unauthorized
        app.session_interface = ServerSessionInterface(built)
        # First of all before-request hooks: a session that could not be loaded
        # ends the request with 503 before any view can treat it as anonymous;
        # then CSRF, before any application hook can change state.
        hooks = app.before_request_funcs.setdefault(None, [])

        def before_request() -> None:
            _fail_closed()
            csrf.protect()

        def after_request(response: Response) -> Response:
            cookies.write_queued_cookies(settings, response)
            csrf.announce_new_token(response)
            return mark_bearer_response(response)

        hooks.insert(0, before_request)
        app.after_request(after_request)
        app.register_blueprint(mail_templates)  # after the app's own templates, which win
        app.jinja_env.globals["csrf_token"] = csrf.csrf_token
        app.context_processor(lambda: {"current_user": current_user})
        register_error_handlers(app)
        if settings.proxy_hops:
            app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
                app.wsgi_app, settings.proxy_hops, settings.proxy_networks
            )
        ignored = [k for k in _FLASK_COOKIE_KEYS if app.config.get(k) != _FLASK_DEFAULTS.get(k)]
        if ignored:
            app.logger.warning(
                "coatcheck: %s set, but coatcheck's cookies follow COATCHECK_COOKIE_* "
                "(Flask's defaults are not secure, so they cannot be taken as a choice)",
                ", ".join(ignored),
            )
        if not settings.cookie_secure:
            app.logger.warning(
                "coatcheck: COATCHECK_COOKIE_SECURE is off; session cookies will be sent "
                "over plain HTTP. Use this only behind TLS-terminating infrastructure you trust "
                "or for local experiments."
            )

    def user_loader(self, loader: Callable[[str], Any]) -> Callable[[str], Any]:
        """Register how to load a user by ID (a decorator), for remember-me and refresh.

        By default users come from coatcheck's own user store.
        """
        self._user_loader = loader
        for app in self._apps:
            services(app).user_loader = loader
        return loader

    def unauthorized_handler(self, handler: Callable[[], Any]) -> Callable[[], Any]:
        """Register what ``@login_required`` answers to a request nobody is logged in to.

        A decorator, as Flask-Login's: ``handler`` takes no argument and returns
        a response (or anything a view may return). By default API clients get
        401 ``unauthenticated`` and browsers a redirect to ``COATCHECK_LOGIN_URL``
        (see :func:`coatcheck.ext.errors.wants_json` for how they are told apart).
        """
        self._unauthorized = handler
        for app in self._apps:
            app.extensions[UNAUTHORIZED_KEY] = handler
        return handler

    @staticmethod
    def state(app: Flask | None = None) -> Services:
        """Return coatcheck's services for ``app`` (default: the current app)."""
        return services(app)

    @property
    def users(self) -> UserStore:
        """Return the current application's user store."""
        return services().users

    def rotate(self) -> None:
        """Give the current session a new ID; its data stays, the old ID dies.

        Takes effect when the response is sent. Call it whenever the privilege
        of the session changes (login, password or role change).
        """
        current_session().rotate_requested = True

    def destroy(self) -> None:
        """End the current session: delete its record and clear its cookie."""
        current_session().destroy_requested = True

    def audit(self, event: str, **fields: Any) -> None:
        """Record a security event with this request's client (see :meth:`Services.audit`)."""
        services().audit(event, client=request_client(), **fields)


def _fail_closed() -> None:
    # Read the session without the proxy, which would mark it accessed (Vary: Cookie).
    current = request.environ.get(SESSION_ENVIRON_KEY)
    if isinstance(current, ServerSession) and current.failure is not None:
        raise current.failure
