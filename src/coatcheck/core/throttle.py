"""Login throttling per account and per client address, on the limits library.

Counters live in this process's memory, or in Redis so that every process
and instance shares them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from limits import RateLimitItem, parse, storage
from limits.strategies import MovingWindowRateLimiter

from .errors import StoreUnavailable

_PREFIX = "coatcheck-throttle"


def ratelimit_url_for(store_url: str) -> tuple[str, str]:
    """Return the limits storage URL and key prefix matching a session store URL.

    Counters go to the store's Redis, under the store's own key prefix. The
    limits library names the same services ``redis+cluster://host:port,...``
    (no db) and ``redis+sentinel://host:port,.../service_name`` (no db: the
    counters of a Sentinel store live in the master's db 0).
    """
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel"):
        return "memory://", _PREFIX
    prefix = dict(parse_qsl(parts.query)).get("prefix", "coatcheck:")
    path = parts.path
    if scheme.endswith("+cluster"):
        path = ""
    elif scheme.endswith("+sentinel"):
        path = "/" + parts.path.strip("/").partition("/")[0]
    return urlunsplit((scheme, parts.netloc, path, "", "")), f"{prefix}throttle"


class LoginThrottle:
    """Count failed logins; tell when an account or an address must wait."""

    def __init__(
        self, storage_url: str, account_rate: str, address_rate: str, *, key_prefix: str = _PREFIX
    ) -> None:
        self.storage = storage.storage_from_string(storage_url, key_prefix=key_prefix)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.account_rate: RateLimitItem = parse(account_rate)
        self.address_rate: RateLimitItem = parse(address_rate)

    def _checks(self, username: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        return [
            (self.account_rate, "account", _account_id(username)),
            (self.address_rate, "address", address or "unknown"),
        ]

    def reserve(self, username: str, address: str) -> int | None:
        """Count an attempt at ``username``; return seconds to wait, or ``None`` to go on.

        The account's slot is taken atomically *before* the password is
        checked, so parallel guesses cannot all pass while the first ones are
        still hashing; :meth:`succeeded` gives the slots back. The address is
        only tested here and counted on failure (:meth:`failed`), so that an
        office of successful logins behind one address is never locked out;
        its limit may thus be overshot by the server's concurrency.
        """
        (account, kind_a, id_a), (address_rate, kind_b, id_b) = self._checks(username, address)
        with _unavailable():
            if not self.limiter.test(address_rate, kind_b, id_b):
                return self._wait(address_rate, kind_b, id_b)
            if not self.limiter.hit(account, kind_a, id_a):
                return self._wait(account, kind_a, id_a)
        return None

    def _wait(self, item: RateLimitItem, kind: str, ident: str) -> int:
        reset = self.limiter.get_window_stats(item, kind, ident).reset_time
        return max(1, math.ceil(reset - time.time()))

    def failed(self, username: str, address: str) -> None:
        """Count a failed login against the address (the account's was reserved)."""
        with _unavailable():
            self.limiter.hit(self.address_rate, "address", address or "unknown")

    def succeeded(self, username: str) -> None:
        """Forget the account's failures after a successful login."""
        with _unavailable():
            self.limiter.clear(self.account_rate, "account", _account_id(username))


def _account_id(username: str) -> str:
    # Bounded and free of odd characters whatever was typed.
    name = username.strip().casefold().encode("utf-8", "surrogatepass")
    return hashlib.sha256(name).hexdigest()[:32]


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"the throttle counters are unavailable: {exc}") from exc
    except Exception as exc:
        # redis-py's errors when the counters live in Redis.
        if type(exc).__module__.startswith("redis"):
            raise StoreUnavailable(
                f"the throttle counters are unavailable: {type(exc).__name__}"
            ) from exc
        raise
