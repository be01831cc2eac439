"""A read cache for the Redis store, kept exact by Redis's own invalidations.

Server-assisted client-side caching (``CLIENT TRACKING``, Redis 6+) in
broadcast mode: a dedicated connection subscribes to ``__redis__:invalidate``
and Redis tells it about every change to a session hash under the store's
prefix, made by any client of any instance. Before every read the pending
messages are drained, without blocking, so a change made anywhere has
evicted the cached copy by the time the next request looks: an authenticated
read costs no round trip (a process sends one ``PING`` per
:data:`LIVENESS_SECONDS` at most, below), and a revocation on any instance
takes effect at the next request on every other.

Misses are cached too: in broadcast mode Redis reports the creation of a key
under the prefix as it reports any change, so a cached "no such hash" is as
exact as a cached hash. This is what makes the revocation stamp, read by
every authenticated request and usually absent, cost no round trip. Misses
have a table of their own, so that a flood of unknown keys (made-up session
cookies) cannot push the cached sessions out.

Safety rules:

- a value read from Redis while any invalidation arrives is not cached (it
  may already be stale: a counter of invalidations is compared around the
  read), and every message evicts;
- if the invalidation connection fails or closes, the whole cache is
  dropped and caching stops until a new connection is subscribed;
- a silent connection is not taken for a quiet one: a hit is served only
  when Redis answered a ``PING`` on it sent less than
  :data:`LIVENESS_SECONDS` ago, and asked again first otherwise. A server
  that stops answering (stopped, hung, cut off behind a proxy that still
  holds the connection open) sends no invalidation and closes nothing; without
  this check its sessions would be served from the cache for as long as it
  stayed away, instead of failing closed;
- after a fork (server workers) the cache and connection are rebuilt.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

#: Cached session hashes per process, at most (the oldest go first beyond).
MAX_ENTRIES = 50_000
#: Cached misses (keys with no hash) per process, at most, apart from the hashes.
MAX_MISSES = 50_000
#: After a failed subscription, reads bypass the cache this long before a new try.
RETRY_SECONDS = 1.0
#: A hit is served only if Redis answered the invalidation connection this recently.
LIVENESS_SECONDS = 0.25
_CHANNEL = "__redis__:invalidate"


class TrackedReadCache:
    """Cache ``HGETALL`` results of keys under one prefix, invalidated by Redis.

    An empty result (no such key) is cached as well.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        on_drop: Callable[[str | None], None] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        #: Told the name of each entry dropped (``None``: all of them).
        self._on_drop = on_drop or (lambda name: None)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = {}
        #: Names read and found absent; an ordered set (the values are unused).
        self._misses: dict[str, None] = {}
        #: Counts invalidations: a read spanning a change is not cached.
        self._epoch = 0
        self._conn: Any = None
        self._pid = os.getpid()
        self._retry_at = 0.0
        #: When the last PING that Redis answered on the connection was sent.
        self._answered_at = -math.inf

    def get(self, name: str) -> dict[str, str]:
        """Return the fields of hash ``name`` (empty if none), from the cache when it is exact."""
        with self._lock:
            if self._drain() and self._holds(name) and self._answering():
                # The PING's wait may have evicted it: look again.
                cached = self._entries.get(name)
                if cached is not None:
                    return cached
                if name in self._misses:
                    return {}
            epoch = self._epoch
        fields: dict[str, str] = self.client.hgetall(name)  # type: ignore[assignment]
        with self._lock:
            if self._drain() and epoch == self._epoch:
                self._keep(name, fields)
        return fields

    def get_after(self, name: str) -> dict[str, str]:
        """Return the fields of ``name`` right after a :meth:`get` of another key.

        A cached copy is served without a new drain or liveness check: it is
        exact as of that :meth:`get` (which drained, and either saw Redis answer
        or dropped the whole cache), so the two reads hold together as of one
        moment. Anything not cached is read as :meth:`get` reads it.
        """
        with self._lock:
            cached = self._entries.get(name)
            if cached is not None:
                return cached
            if name in self._misses:
                return {}
        return self.get(name)

    def _holds(self, name: str) -> bool:
        return name in self._entries or name in self._misses

    def _keep(self, name: str, fields: dict[str, str]) -> None:
        """Cache what a read of ``name`` returned; the oldest entry of its table goes if full."""
        if fields:
            if len(self._entries) >= MAX_ENTRIES:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self._on_drop(oldest)
            self._entries[name] = fields
        else:
            if len(self._misses) >= MAX_MISSES:
                del self._misses[next(iter(self._misses))]
            self._misses[name] = None

    def _evict(self, name: str) -> None:
        self._entries.pop(name, None)
        self._misses.pop(name, None)
        self._on_drop(name)

    def _clear(self) -> None:
        self._entries.clear()
        self._misses.clear()
        self._on_drop(None)
        self._epoch += 1

    def forget(self, name: str) -> None:
        """Drop ``name`` now (this process wrote it; Redis will say so too)."""
        with self._lock:
            self._evict(name)
            self._epoch += 1

    def close(self) -> None:
        """Drop the cache and the invalidation connection."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):  # it is being thrown away either way
                self._conn.disconnect()
        self._conn = None
        self._answered_at = -math.inf

    def _drain(self) -> bool:
        """Apply pending invalidations; return whether the connection is up.

        A hit needs more: that Redis still answers (:meth:`_answering`).
        """
        if self._pid != os.getpid():  # a forked child: nothing inherited is ours
            self._conn, self._pid = None, os.getpid()
            self._clear()
        if self._conn is None and time.monotonic() < self._retry_at:
            return False  # subscribing failed a moment ago: read from Redis meanwhile
        try:
            if self._conn is None:
                self._subscribe()
            while self._conn.can_read(timeout=0):
                self._apply(self._conn.read_response())
        except redis.TimeoutError:
            # No answer in time: a read would wait as long again before its 503.
            self._drop_connection()
            raise
        except (redis.RedisError, OSError):
            self._drop_connection()
            return False
        return True

    def _drop_connection(self) -> None:
        self._reset()
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def _answering(self) -> bool:
        """Tell whether Redis answered lately, sending it a ``PING`` if not.

        Invalidations that come before the answer are applied. A connection
        that fails is dropped with the cache. One that gives no answer within
        its socket timeout is dropped too, and :class:`redis.TimeoutError`
        raised: the request fails now rather than wait as long again for a
        read from a server that does not answer.
        """
        sent = time.monotonic()
        if sent - self._answered_at < LIVENESS_SECONDS:
            return True
        conn = self._conn
        timeout = conn.socket_timeout or RETRY_SECONDS
        try:
            conn.send_command("PING")
            while True:
                if not conn.can_read(timeout=max(0.0, sent + timeout - time.monotonic())):
                    raise redis.TimeoutError("no answer to PING on the invalidation connection")
                message = conn.read_response()
                if isinstance(message, list) and message and message[0] == "pong":
                    break
                self._apply(message)
        except redis.TimeoutError:
            self._drop_connection()
            raise
        except (redis.RedisError, OSError):
            self._drop_connection()
            return False
        self._answered_at = sent
        return True

    def _subscribe(self) -> None:
        pool = self.client.connection_pool
        # RESP2 on this connection: invalidations come as plain pub/sub messages.
        kwargs = {
            k: v
            for k, v in pool.connection_kwargs.items()
            if not k.startswith("maint_notifications")
        }
        conn = pool.connection_class(**{**kwargs, "protocol": 2})
        sent = time.monotonic()
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            conn.send_command(
                "CLIENT",
                "TRACKING",
                "ON",
                "REDIRECT",
                client_id,
                "BCAST",
                "PREFIX",
                self.prefix,
            )
            conn.read_response()
            conn.send_command("SUBSCRIBE", _CHANNEL)
            conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        # Whatever was cached before this subscription may have changed unseen.
        self._clear()
        self._conn = conn
        self._answered_at = sent  # it has just answered

    def _apply(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3 or message[0] != "message":
            return
        self._epoch += 1
        keys = message[2]
        if keys is None:  # FLUSHDB / FLUSHALL
            self._clear()
            return
        for key in keys if isinstance(keys, list) else [keys]:
            self._evict(key)
