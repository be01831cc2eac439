"""The Flask extension: ``CoatCheck(app)`` or ``cc.init_app(app)``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, request, session

from ..core.clock import Clock, system_clock
from ..core.errors import CoatcheckError
from ..core.records import LifetimePolicy
from ..core.settings import Settings
from ..stores.base import SessionStore, open_store
from .errors import register_error_handlers
from .session import SESSION_ENVIRON_KEY, ServerSession, ServerSessionInterface

EXTENSION_KEY = "coatcheck"


@dataclass
class CoatCheckState:
    """What the extension keeps per application."""

    settings: Settings
    store: SessionStore
    clock: Clock

    @property
    def lifetimes(self) -> LifetimePolicy:
        """Return the session lifetime policy."""
        return self.settings.lifetimes


class CoatCheck:
    """Secure server-side sessions for a Flask application.

    :param app: the application, or ``None`` to call :meth:`init_app` later.
    :param store: a store instance; by default ``COATCHECK_STORE_URL`` picks one.
    :param clock: where time comes from (tests pass a manual clock).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        store: SessionStore | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self.clock = clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install server-side sessions on ``app``; check its settings now."""
        settings = Settings.from_config(app.config, instance_path=app.instance_path)
        store = self._store or open_store(settings.store_url, clock=self.clock)
        state = CoatCheckState(settings=settings, store=store, clock=self.clock)
        app.extensions[EXTENSION_KEY] = state
        app.session_interface = ServerSessionInterface(state)
        # First of all before-request hooks: a session that could not be loaded
        # ends the request with 503 before any view can treat it as anonymous.
        app.before_request_funcs.setdefault(None, []).insert(0, _fail_closed)
        register_error_handlers(app)
        if not settings.cookie_secure:
            app.logger.warning(
                "coatcheck: COATCHECK_COOKIE_SECURE is off; session cookies will be sent "
                "over plain HTTP. Use this only behind TLS-terminating infrastructure you trust "
                "or for local experiments."
            )

    @staticmethod
    def state(app: Flask | None = None) -> CoatCheckState:
        """Return the extension's state for ``app`` (default: the current app)."""
        app = app if app is not None else current_app
        try:
            state: CoatCheckState = app.extensions[EXTENSION_KEY]
        except KeyError:
            raise CoatcheckError("CoatCheck is not initialised on this application") from None
        return state

    def rotate(self) -> None:
        """Give the current session a new ID; its data stays, the old ID dies.

        Takes effect when the response is sent. Call it whenever the privilege
        of the session changes (login, password or role change).
        """
        current_session().rotate_requested = True

    def destroy(self) -> None:
        """End the current session: delete its record and clear its cookie."""
        current_session().destroy_requested = True


def current_session() -> ServerSession:
    """Return the current request's :class:`ServerSession`."""
    obj = session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(obj, ServerSession):
        raise CoatcheckError("the current session is not a coatcheck session")
    return obj


def _fail_closed() -> None:
    # Read the session without the proxy, which would mark it accessed (Vary: Cookie).
    current = request.environ.get(SESSION_ENVIRON_KEY)
    if isinstance(current, ServerSession) and current.failure is not None:
        raise current.failure
