"""The one services object: everything the protocols need, built once and passed in.

This module is the composition root of ``auth/``: it imports the protocols,
and they import it only for type checking.

:func:`build_services` is called by the Flask extension's ``init_app`` (the
composition root) and by anything else that runs the protocols without a
request, such as the command line. Nothing in ``auth/`` looks anything up.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError
from ..core.logtext import escape_for_log
from ..core.passwords import PasswordHasher
from ..core.records import LifetimePolicy
from ..core.sealing import Sealer
from ..core.settings import Settings
from ..core.signing import CookieSigner, signing_keys
from ..core.tokens import TokenSigner, make_token_signer
from ..stores.base import SessionStore, open_store
from ..users import models as events
from .accounts import Accounts
from .client import NO_CLIENT, Client
from .devices import Devices
from .emails import NOTICE_EVENTS, AccountMail, notice_mail
from .factors import SecondFactors
from .remember import RememberSeries
from .secret import check_shared_signing_key
from .sessions import Sessions
from .stamps import Stamps
from .throttle import LoginThrottle
from .tokens import TokenFamilies

if TYPE_CHECKING:
    from ..users import UserStore

log = logging.getLogger("coatcheck.audit")

#: Events an operator should see: logged at WARNING (a default Flask app shows them).
ATTENTION_EVENTS = frozenset({events.REMEMBER_THEFT, events.TOKEN_REUSE, events.LOGIN_THROTTLED})

#: Called with each security event: (event, fields) after it is recorded.
Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class Services:
    """The store, the users, the clock, the signers and the protocols built on them."""

    settings: Settings
    store: SessionStore
    clock: Clock
    hasher: PasswordHasher
    throttle: LoginThrottle
    csrf_signer: CookieSigner
    remember_signer: CookieSigner
    token_signer: TokenSigner
    #: Seals TOTP secrets at rest (a key derived from SECRET_KEY; fallbacks open).
    factor_sealer: Sealer
    users_factory: Callable[[], UserStore]
    #: Loads an application's own user by ID (``None``: the built-in user store).
    user_loader: Callable[[str], Any] | None = None
    listeners: list[Listener] = field(default_factory=list)
    #: The application handed in a user store of its own.
    users_given: bool = False
    #: Origins trusted for CSRF besides COATCHECK_CSRF_TRUSTED_ORIGINS (the service trusts
    #: the sites its access rules protect, under COATCHECK_COOKIE_DOMAIN).
    origin_trusted: Callable[[str], bool] | None = None
    _users: UserStore | None = field(default=None, repr=False)
    _users_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lifetimes(self) -> LifetimePolicy:
        """Return the session lifetime policy."""
        return self.settings.lifetimes

    @property
    def uses_user_store(self) -> bool:
        """Tell whether coatcheck's own user store is in use (and so keeps the audit log).

        It is, unless the application loads its own users (a user loader) and
        gave no user store: then no user database is created, and security
        events go to the log and the ``security_event`` signal only.
        """
        return self.users_given or self.user_loader is None or self._users is not None

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
        """Return the user with ``user_id`` (the application's loader, else the user store)."""
        if self.user_loader is not None:
            return self.user_loader(user_id)
        try:
            return self.users.get(int(user_id))
        except ValueError:
            return None

    @functools.cached_property
    def stamps(self) -> Stamps:
        """Return the users' revocation stamps."""
        return Stamps(self.store, self.clock)

    @functools.cached_property
    def sessions(self) -> Sessions:
        """Return the cookie-session protocol."""
        return Sessions(self)

    @functools.cached_property
    def remember(self) -> RememberSeries:
        """Return the remember-me series protocol."""
        return RememberSeries(self)

    @functools.cached_property
    def tokens(self) -> TokenFamilies:
        """Return the token-family protocol."""
        return TokenFamilies(self)

    @functools.cached_property
    def accounts(self) -> Accounts:
        """Return the account operations."""
        return Accounts(self)

    @functools.cached_property
    def factors(self) -> SecondFactors:
        """Return the second factors (TOTP, WebAuthn, recovery codes)."""
        return SecondFactors(self)

    @functools.cached_property
    def webauthn(self) -> Any:
        """Return the WebAuthn credentials protocol (:mod:`.webauthn`)."""
        from .webauthn import WebAuthnCredentials  # py_webauthn only when used

        return WebAuthnCredentials(self)

    @functools.cached_property
    def account_mail(self) -> AccountMail:
        """Return password reset, address verification and security notices."""
        return AccountMail(self)

    @functools.cached_property
    def devices(self) -> Devices:
        """Return the device (session) operations."""
        return Devices(self)

    def audit(
        self,
        event: str,
        *,
        client: Client = NO_CLIENT,
        user_id: str | int | None = None,
        username: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a security event in the audit log, the log and with every listener.

        Given only ``user_id``, the username is looked up, so that every row
        names its user. Events that want an operator's attention (theft,
        reuse, throttling) are logged at WARNING, the rest at INFO.
        """
        user_key = int(user_id) if user_id is not None and str(user_id).isdigit() else None
        if username is None and user_id is not None:
            username = getattr(self.load_user(str(user_id)), "username", None)
        log.log(  # escaped: a typed username must not forge log lines
            logging.WARNING if event in ATTENTION_EVENTS else logging.INFO,
            "security event %s user=%s username=%s ip=%s session=%s",
            event,
            user_key,
            escape_for_log(username),
            escape_for_log(client.ip),
            client.session_handle,
        )
        if self.uses_user_store:
            self.users.record_event(
                event,
                user_id=user_key,
                username=username,
                ip=client.ip,
                user_agent=client.user_agent,
                session_handle=client.session_handle,
                detail=detail,
                # A security notice goes with its audit row: both kept, or neither.
                mail=notice_mail(event, user_key, detail)
                if event in NOTICE_EVENTS and user_key is not None
                else None,
            )
        fields = {"user_id": user_key, "username": username, "detail": detail}
        for listener in self.listeners:
            listener(event, fields)

    def close(self) -> None:
        """Release the store's, the throttle's and the user store's connections."""
        self.store.close()
        self.throttle.close()
        if self._users is not None:
            self._users.close()


def build_services(
    settings: Settings,
    *,
    secret_key: str | bytes | None,
    fallbacks: Sequence[str | bytes] = (),
    store: SessionStore | None = None,
    users: UserStore | None = None,
    hasher: PasswordHasher | None = None,
    clock: Clock = system_clock,
    user_loader: Callable[[str], Any] | None = None,
    verify_key: bool = True,
) -> Services:
    """Return the services the settings describe; check every key now.

    ``verify_key=False`` skips comparing the key with a shared store's (see
    :mod:`.secret`): for tools that only read, and sign nothing.
    """
    keys = signing_keys(secret_key, fallbacks)

    def open_users() -> UserStore:
        from ..users import UserStore  # SQLAlchemy only when the built-in store is used

        return users or UserStore(
            settings.database_url,
            clock=clock,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )

    opened = store or open_store(_with_store_timeout(settings), clock=clock)
    try:
        if verify_key:
            check_shared_signing_key(settings.store_url, opened, clock, keys)
    except ConfigurationError:
        if store is None:
            opened.close()
        raise
    return Services(
        settings=settings,
        store=opened,
        clock=clock,
        hasher=hasher or PasswordHasher(),
        throttle=LoginThrottle.from_settings(settings, clock=clock),
        csrf_signer=CookieSigner(keys, "csrf", clock=clock),
        remember_signer=CookieSigner(keys, "remember", clock=clock),
        token_signer=make_token_signer(settings, keys, clock),
        factor_sealer=Sealer(keys, "totp"),
        users_factory=open_users,
        user_loader=user_loader,
        users_given=users is not None,
    )


def _with_store_timeout(settings: Settings) -> str:
    """Return the store URL with ``COATCHECK_STORE_TIMEOUT`` as its Redis socket timeouts."""
    url = settings.store_url
    if url.partition("://")[0].lower().partition("+")[0] not in ("redis", "rediss"):
        return url
    from ..stores.redis_urls import with_timeout  # redis only when a Redis store is used

    return with_timeout(url, settings.store_timeout)
