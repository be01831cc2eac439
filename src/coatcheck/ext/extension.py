"""The Flask extension: ``CoatCheck(app)`` or ``cc.init_app(app)``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, has_request_context, request, session
from werkzeug.middleware.proxy_fix import ProxyFix

from ..core.clock import Clock, system_clock
from ..core.errors import CoatcheckError, ConfigurationError
from ..core.logtext import escape_for_log
from ..core.passwords import PasswordHasher
from ..core.records import LifetimePolicy
from ..core.settings import Settings
from ..core.signing import CookieSigner, signing_keys
from ..core.throttle import LoginThrottle, ratelimit_url_for
from ..core.tokens import TokenSigner
from ..stores.base import SessionStore, open_store
from .client import client_address, client_user_agent
from .errors import register_error_handlers
from .session import SESSION_ENVIRON_KEY, ServerSession, ServerSessionInterface
from .signals import security_event

if TYPE_CHECKING:
    from ..users import UserStore

EXTENSION_KEY = "coatcheck"
_FLASK_COOKIE_KEYS = (
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "SESSION_COOKIE_HTTPONLY",
)
_FLASK_DEFAULTS = {k: Flask.default_config.get(k) for k in _FLASK_COOKIE_KEYS}
log = logging.getLogger("coatcheck.audit")


@dataclass
class CoatCheckState:
    """What the extension keeps per application."""

    settings: Settings
    store: SessionStore
    clock: Clock
    hasher: PasswordHasher
    throttle: LoginThrottle
    csrf_signer: CookieSigner
    remember_signer: CookieSigner
    token_signer: TokenSigner
    users_factory: Callable[[], UserStore]
    #: Returns the application's user loader, if it registered one.
    custom_loader: Callable[[], Callable[[str], Any] | None] = lambda: None
    _users: UserStore | None = field(default=None, repr=False)
    _users_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lifetimes(self) -> LifetimePolicy:
        """Return the session lifetime policy."""
        return self.settings.lifetimes

    @property
    def users(self) -> UserStore:
        """Return the user store, opened (and its schema created) on first use."""
        if self._users is None:
            with self._users_lock:
                if self._users is None:
                    users = self.users_factory()
                    users.create_schema()
                    self._users = users
        return self._users

    def load_user(self, user_id: str) -> Any:
        """Return the user with ``user_id`` for a login by remember-me, or ``None``."""
        loader = self.custom_loader()
        if loader is not None:
            return loader(user_id)
        try:
            return self.users.get(int(user_id))
        except ValueError:
            return None

    def audit(
        self,
        event: str,
        *,
        user_id: str | int | None = None,
        username: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a security event with the request's address, agent and session handle."""
        ip = user_agent = handle = None
        if has_request_context():
            ip, user_agent = client_address(), client_user_agent()
            current = request.environ.get(SESSION_ENVIRON_KEY)
            # The session's handle, if it is or is about to be stored.
            if isinstance(current, ServerSession) and (
                current.record is not None or current.rotate_requested
            ):
                handle = current.handle
        user_key = int(user_id) if user_id is not None and str(user_id).isdigit() else None
        log.info(  # escaped: a typed username must not forge log lines
            "security event %s user=%s username=%s ip=%s session=%s",
            event,
            user_key,
            escape_for_log(username),
            escape_for_log(ip),
            handle,
        )
        security_event.send(self, event=event, user_id=user_key, username=username)
        self.users.record_event(
            event,
            user_id=user_key,
            username=username,
            ip=ip,
            user_agent=user_agent,
            session_handle=handle,
            detail=detail,
        )


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
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install coatcheck on ``app``; check every setting now."""
        from ..users import UserStore
        from . import cookies, csrf
        from .tokens import make_signer, mark_bearer_response

        settings = Settings.from_config(app.config, instance_path=app.instance_path)
        keys = signing_keys(
            app.config.get("SECRET_KEY"), app.config.get("SECRET_KEY_FALLBACKS") or ()
        )
        throttle = _make_throttle(settings)
        state = CoatCheckState(
            settings=settings,
            store=self._store or open_store(settings.store_url, clock=self.clock),
            clock=self.clock,
            hasher=self._hasher or PasswordHasher(),
            throttle=throttle,
            csrf_signer=CookieSigner(keys, "csrf"),
            remember_signer=CookieSigner(keys, "remember"),
            token_signer=make_signer(settings, keys, self.clock),
            users_factory=lambda: (
                self._users
                or UserStore(
                    settings.database_url, clock=self.clock, pool_size=settings.database_pool_size
                )
            ),
            custom_loader=lambda: self._user_loader,
        )
        app.extensions[EXTENSION_KEY] = state
        app.session_interface = ServerSessionInterface(state)
        # First of all before-request hooks: a session that could not be loaded
        # ends the request with 503 before any view can treat it as anonymous;
        # then CSRF, before any application hook can change state.
        hooks = app.before_request_funcs.setdefault(None, [])

        def before_request() -> None:
            _fail_closed()
            csrf.protect()

        def after_request(response: Response) -> Response:
            cookies.write_queued_cookies(settings, response)
            return mark_bearer_response(response)

        hooks.insert(0, before_request)
        app.after_request(after_request)
        app.jinja_env.globals["csrf_token"] = csrf.csrf_token
        app.context_processor(_template_context)
        register_error_handlers(app)
        if settings.trusted_proxies:
            n = settings.trusted_proxies
            app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
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
        """Register how to load a user by ID for remember-me logins (a decorator).

        By default users come from coatcheck's own user store.
        """
        self._user_loader = loader
        return loader

    @staticmethod
    def state(app: Flask | None = None) -> CoatCheckState:
        """Return the extension's state for ``app`` (default: the current app)."""
        app = app if app is not None else current_app
        try:
            state: CoatCheckState = app.extensions[EXTENSION_KEY]
        except KeyError:
            raise CoatcheckError("CoatCheck is not initialised on this application") from None
        return state

    @property
    def users(self) -> UserStore:
        """Return the current application's user store."""
        return self.state().users

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
        """Record a security event (see :meth:`CoatCheckState.audit`)."""
        self.state().audit(event, **fields)


def current_session() -> ServerSession:
    """Return the current request's :class:`ServerSession` (and mark it read)."""
    obj = request.environ.get(SESSION_ENVIRON_KEY)
    if not isinstance(obj, ServerSession):
        obj = session._get_current_object()  # type: ignore[attr-defined]
        if not isinstance(obj, ServerSession):
            raise CoatcheckError("the current session is not a coatcheck session")
    obj.accessed = True
    return obj


def _fail_closed() -> None:
    # Read the session without the proxy, which would mark it accessed (Vary: Cookie).
    current = request.environ.get(SESSION_ENVIRON_KEY)
    if isinstance(current, ServerSession) and current.failure is not None:
        raise current.failure


def _template_context() -> dict[str, Any]:
    from .login import current_user

    return {"current_user": current_user}


def _make_throttle(settings: Settings) -> LoginThrottle:
    if settings.ratelimit_url:
        url, prefix = settings.ratelimit_url, "coatcheck-throttle"
    else:
        url, prefix = ratelimit_url_for(settings.store_url)
    try:
        return LoginThrottle(
            url, settings.throttle_account, settings.throttle_address, key_prefix=prefix
        )
    except Exception as exc:  # the limits library's own errors may quote the URL
        scheme = url.partition("://")[0]
        raise ConfigurationError(
            f"the login throttle cannot use a {scheme}:// store ({type(exc).__name__}); "
            "set COATCHECK_RATELIMIT_URL to a storage URL of the limits library"
        ) from None
