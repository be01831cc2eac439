"""Throttling of logins and registrations, on the limits library, with no Flask.

Every login attempt goes :meth:`LoginThrottle.reserve` (before the password
is checked), then :meth:`~LoginThrottle.failed` or
:meth:`~LoginThrottle.succeeded`. Three limits apply, each a moving window:

``pair`` (``COATCHECK_THROTTLE_ACCOUNT``, 5 per 15 minutes)
    Attempts at one account from one client address. :meth:`reserve` takes a
    slot atomically before the password is checked, so parallel guesses
    cannot all pass while the first ones are still hashing. A failure keeps
    its slot; a success gives the pair's slots (and its audit mark) back,
    since whoever is at that address knows the password. A stranger's failures lock only the
    stranger's pair: the owner at another address logs in as usual.

``account`` (``COATCHECK_THROTTLE_ACCOUNT_CEILING``, 50 per 15 minutes)
    Failures at one account from all addresses together: the backstop
    against a campaign spread over many addresses, each staying under the
    pair's limit. Past it, every address is refused for that account, the
    owner's included, until the window frees a slot. A success does *not*
    clear it: the owner's login proves nothing about the guesses made
    elsewhere, and clearing would give an attacker a fresh budget each time
    the owner logs in. Reaching it takes at least the ceiling divided by the
    pair's limit in failing addresses (10 by default; an IPv6 /64 counts
    once), which is an attack under way, and it lifts by itself as the
    window moves past the guesses.

``address`` (``COATCHECK_THROTTLE_ADDRESS``, 100 per 15 minutes)
    Failures from one client address, whatever the accounts (one address
    trying many accounts). Successes never count, so an office behind one
    address is not locked out by its own logins, and a success does not
    clear it either (one colleague's login must not launder another's
    guesses).

:meth:`reserve` only tests the account and address limits, which count on
:meth:`failed`: concurrent attempts may overshoot them by the number of
requests in flight, never the pair's. An attempt that neither fails nor
succeeds (an error) keeps its pair slot, as a failure would. A wrong second
factor is a failure like a wrong password: reserve, then fail.

Registration (``COATCHECK_THROTTLE_REGISTER``, 10 per hour) counts every
attempt from a client address, successful or not.

A refusal is a :class:`Refusal`: seconds until the window frees a slot, the
scope refused, and ``first``, true for the first refusal of that key within a
window's length, so that a flood of refused attempts writes one audit event,
not one per attempt. ``first`` lives with the counters (a hit on a
one-per-window item keyed by the refused key), so it is shared by every
process as they are. A refused attempt takes no slot and counts as no
failure.

Keys: usernames are stripped, case-folded and hashed (bounded, free of odd
characters, no account name in the storage). Client addresses are keyed as
IPv4 addresses, and IPv6 ones by their /64 network (IPv4-mapped ones as
IPv4): one host commonly holds a whole /64, and keying by full address would
give it 2**64 budgets.

Counters live where :meth:`LoginThrottle.from_settings` puts them: in the
Redis of a Redis session store (shared by every process and instance), in a
SQLite file beside a SQLite session store (shared by the workers of one
machine, kept across restarts), in memory for a ``memory://`` store, or at
``COATCHECK_RATELIMIT_URL``. Redis counters are stamped by the limits
library with the system time; the others follow the injected clock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError, StoreUnavailable
from ..core.settings import Settings
from ..stores.sqlite_throttle import MEMORY, SCHEME, SQLiteThrottleStorage

_PREFIX = "coatcheck-throttle"
_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel")
_SQLITE_STORE = "sqlite:///"


def ratelimit_url_for(store_url: str) -> tuple[str, str]:
    """Return the limits storage URL and key prefix matching a session store URL.

    A Redis store's counters go to its Redis, under the store's own key
    prefix. The limits library names the same services
    ``redis+cluster://host:port,...`` (no db) and
    ``redis+sentinel://host:port,.../service_name`` (no db: the counters of a
    Sentinel store live in the master's db 0). A SQLite store's go to
    ``throttle.db`` in the same folder; any other store's to memory.
    """
    if store_url.startswith(_SQLITE_STORE) and len(store_url) > len(_SQLITE_STORE):
        folder = os.path.dirname(store_url[len(_SQLITE_STORE) :])
        return f"{SCHEME}:///{os.path.join(folder, 'throttle.db')}", _PREFIX
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme not in _REDIS_SCHEMES:
        return "memory://", _PREFIX
    prefix = dict(parse_qsl(parts.query)).get("prefix", "coatcheck:")
    path = parts.path
    if scheme.endswith("+cluster"):
        path = ""
    elif scheme.endswith("+sentinel"):
        path = "/" + parts.path.strip("/").partition("/")[0]
    return urlunsplit((scheme, parts.netloc, path, "", "")), f"{prefix}throttle"


def open_storage(
    url: str,
    *,
    key_prefix: str = _PREFIX,
    clock: Clock = system_clock,
    timeout: float | None = None,
) -> Storage:
    """Return the limits storage at ``url``; ``memory://`` is this process's memory.

    Storages of this package follow ``clock``; those of the limits library
    (Redis, Memcached, MongoDB) receive ``key_prefix``. A Redis storage waits
    ``timeout`` seconds at most to connect or for an answer, and does not try
    a timed-out call again (``COATCHECK_STORE_TIMEOUT``; the URL's own
    ``socket_timeout`` wins).
    """
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return SQLiteThrottleStorage(f"{SCHEME}:///{MEMORY}", clock=clock)
    if scheme == SCHEME:
        return SQLiteThrottleStorage(url, clock=clock)
    options: dict[str, Any] = {}
    if timeout is not None and scheme.partition("+")[0] in ("redis", "rediss"):
        from ..stores.redis_urls import client_retry

        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        options["retry"] = client_retry()
    storage = storage_from_string(url, key_prefix=key_prefix, **options)
    if not isinstance(storage, Storage):  # an async+ scheme
        raise TypeError("the login throttle needs a synchronous storage")
    return storage


@dataclass(frozen=True)
class Refusal:
    """Why and for how long an attempt is refused."""

    #: Seconds until the window frees a slot (``Retry-After``), at least 1.
    wait: int
    #: The limit reached: ``"pair"``, ``"account"``, ``"address"`` or ``"register"``.
    scope: str
    #: True only for the first refusal of this key within its window: audit only then.
    first: bool


class LoginThrottle:
    """Count login failures and registrations; tell who must wait, and how long.

    :param storage: a limits storage supporting the moving window.
    :param pair: the rate of attempts per account and address.
    :param ceiling: the rate of failures per account from all addresses.
    :param address: the rate of failures per client address.
    :param register: the rate of registrations per client address.
    :param reset: the rate of password reset requests per client address.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        pair: str = "5/15 minutes",
        ceiling: str = "50/15 minutes",
        address: str = "100/15 minutes",
        register: str = "10/hour",
        reset: str = "20/15 minutes",
    ) -> None:
        if not isinstance(storage, MovingWindowSupport):
            raise TypeError("the login throttle needs a storage with a moving window")
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.rates: dict[str, RateLimitItem] = {
            "pair": parse(pair),
            "account": parse(ceiling),
            "address": parse(address),
            "register": parse(register),
            "reset": parse(reset),
        }
        # One audit mark per refused key and window; the window's length is the scope's.
        self._audit = {
            scope: type(rate)(1, rate.multiples, namespace=rate.namespace)
            for scope, rate in self.rates.items()
        }
        self._now: Clock = (
            storage.clock if isinstance(storage, SQLiteThrottleStorage) else system_clock
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> LoginThrottle:
        """Return the throttle the settings describe, its counters where they say.

        Raise :class:`ConfigurationError` when the storage URL is unusable; the
        message names its scheme only, since the URL may hold a password.
        """
        if settings.ratelimit_url:
            url, prefix = settings.ratelimit_url, _PREFIX
        else:
            url, prefix = ratelimit_url_for(settings.store_url)
        try:
            storage = open_storage(
                url, key_prefix=prefix, clock=clock, timeout=settings.store_timeout
            )
            return cls(
                storage,
                pair=settings.throttle_account,
                ceiling=settings.throttle_account_ceiling,
                address=settings.throttle_address,
                register=settings.throttle_register,
            )
        except Exception as exc:  # the limits library's own errors may quote the URL
            scheme = url.partition("://")[0]
            raise ConfigurationError(
                f"the login throttle cannot use a {scheme}:// store ({type(exc).__name__}); "
                "set COATCHECK_RATELIMIT_URL to a storage URL of the limits library"
            ) from None

    def reserve(self, username: str, address: str) -> Refusal | None:
        """Take a slot for an attempt at ``username``; return a refusal or ``None`` to go on.

        Call it before the password is checked, then :meth:`failed` or
        :meth:`succeeded`. The address's and the account's failures are
        tested, then the pair's slot is taken atomically. A refusal takes
        nothing.
        """
        account, place = _account_key(username), _address_key(address)
        with _unavailable():
            refusal = self._test("address", place) or self._test("account", account)
            if refusal is not None:
                return refusal
            if not self.limiter.hit(self.rates["pair"], "pair", account, place):
                return self._refuse("pair", account, place)
        return None

    def failed(self, username: str, address: str) -> None:
        """Count a failed attempt (wrong password, unknown user, wrong second factor).

        The pair's slot was taken by :meth:`reserve` and stays taken; the
        failure counts against the account's ceiling and the address's budget.
        """
        account, place = _account_key(username), _address_key(address)
        with _unavailable():
            self.limiter.hit(self.rates["account"], "account", account)
            self.limiter.hit(self.rates["address"], "address", place)

    def succeeded(self, username: str, address: str) -> None:
        """Give the pair's slots back after a right password.

        The pair's audit mark goes too, so that a new lock of the pair is
        audited. The account's ceiling and the address's budget keep their
        failures.
        """
        account, place = _account_key(username), _address_key(address)
        with _unavailable():
            self.limiter.clear(self.rates["pair"], "pair", account, place)
            self.limiter.clear(self._audit["pair"], "audit", "pair", account, place)

    def reserve_registration(self, address: str) -> Refusal | None:
        """Count a registration attempt from ``address``; return a refusal or ``None``."""
        return self._reserve("register", address)

    def reserve_reset(self, address: str) -> Refusal | None:
        """Count a password reset request from ``address``; return a refusal or ``None``."""
        return self._reserve("reset", address)

    def _reserve(self, scope: str, address: str) -> Refusal | None:
        place = _address_key(address)
        with _unavailable():
            if not self.limiter.hit(self.rates[scope], scope, place):
                return self._refuse(scope, place)
        return None

    def close(self) -> None:
        """Let go of the storage's connections."""
        if isinstance(self.storage, SQLiteThrottleStorage):
            self.storage.close()
            return
        for name in ("storage", "storage_slave"):  # the clients of limits' Redis storages
            close = getattr(getattr(self.storage, name, None), "close", None)
            if callable(close):
                close()

    def _test(self, scope: str, *ids: str) -> Refusal | None:
        stats = self.limiter.get_window_stats(self.rates[scope], scope, *ids)
        return self._refuse(scope, *ids, reset=stats.reset_time) if stats.remaining < 1 else None

    def _refuse(self, scope: str, *ids: str, reset: float | None = None) -> Refusal:
        rate = self.rates[scope]
        if reset is None:
            reset = self.limiter.get_window_stats(rate, scope, *ids).reset_time
        wait = min(max(1, math.ceil(reset - self._now())), rate.get_expiry())
        first = self.limiter.hit(self._audit[scope], "audit", scope, *ids)
        return Refusal(wait=wait, scope=scope, first=first)


def _account_key(username: str) -> str:
    # Bounded and free of odd characters whatever was typed.
    name = username.strip().casefold().encode("utf-8", "surrogatepass")
    return hashlib.sha256(name).hexdigest()[:32]


def _address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        if not address:
            return "unknown"
        return "h" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"
    return str(ip)


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (ConnectionError, OSError, TimeoutError, sqlite3.Error, StorageError) as exc:
        raise StoreUnavailable(
            f"the throttle counters are unavailable: {type(exc).__name__}"
        ) from exc
    except Exception as exc:
        # redis-py's errors when the counters live in Redis.
        if type(exc).__module__.startswith("redis"):
            raise StoreUnavailable(
                f"the throttle counters are unavailable: {type(exc).__name__}"
            ) from exc
        raise
