"""Turn a Redis store URL into redis-py clients: one server, a Cluster, or Sentinels.

The URL forms are described in :mod:`coatcheck.stores.redis`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..core.errors import ConfigurationError

# What the clients asking the Sentinels for the master take from the URL.
_SENTINEL_OPTIONS = frozenset({"username", "password", "socket_timeout", "socket_connect_timeout"})


#: Seconds a client waits to connect or for an answer, unless told otherwise.
DEFAULT_TIMEOUT = 0.5
_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


def client_retry() -> Retry:
    """Return the retry policy of every client: refused or dropped connections only.

    A call that timed out is not tried again: a server that gave no answer in
    time (stopped, hung, cut off) would most likely give none to the next try
    either, and the request would wait twice as long before its 503. A
    connection refused or reset (a restarted server, a pooled connection it
    closed) fails at once, and is worth two quick retries.
    """
    return Retry(
        ExponentialBackoff(cap=0.05, base=0.005), 2, supported_errors=(redis.ConnectionError,)
    )


def client_options(timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Return the options coatcheck gives every client it opens.

    :param timeout: seconds to connect, and to wait for each answer
        (``COATCHECK_STORE_TIMEOUT``).
    """
    return {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": client_retry(),
    }


def with_timeout(url: str, timeout: float) -> str:
    """Return the Redis ``url`` with ``timeout`` as its socket timeouts, unless it has its own."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {name for name, _ in query}
    query += [(name, repr(float(timeout))) for name in _TIMEOUT_OPTIONS if name not in given]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _url_options(parts: SplitResult, scheme: str, query: dict[str, str]) -> dict[str, Any]:
    """Return our client options overridden by the URL's, as ``Redis.from_url`` reads them."""
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@localhost" if userinfo else "localhost"
    try:
        given: dict[str, Any] = parse_url(urlunsplit((scheme, netloc, "", urlencode(query), "")))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis store URL: {exc}") from None
    del given["host"]
    if given.pop("connection_class", None) is not None:
        given["ssl"] = True
    return {**client_options(), **given}


def _locations(parts: SplitResult) -> list[tuple[str, int]]:
    """Return the ``host:port`` pairs of a URL listing several servers."""
    found = []
    for location in parts.netloc.rpartition("@")[2].split(","):
        try:
            one = urlsplit(f"//{location.strip()}")
            host, port = one.hostname, one.port or 6379
        except ValueError:
            host = None
        if not host:
            raise ConfigurationError(f"bad Redis server address {location!r} in the store URL")
        found.append((host, port))
    return found


def cluster_client(parts: SplitResult, scheme: str, query: dict[str, str]) -> redis.RedisCluster:
    """Return a client of the cluster whose startup nodes the URL lists."""
    options = _url_options(parts, scheme, query)
    db = options.pop("db", None)
    if parts.path.strip("/") not in ("", "0") or db not in (None, 0):
        raise ConfigurationError("a Redis Cluster has one database: 0; drop the db from the URL")
    nodes = [ClusterNode(host, port) for host, port in _locations(parts)]  # type: ignore[no-untyped-call]
    return redis.RedisCluster(startup_nodes=nodes, **options)


def sentinel_master(parts: SplitResult, query: dict[str, str]) -> tuple[Sentinel, redis.Redis]:
    """Return the Sentinels the URL lists, and a client of the master they name."""
    service, _, db = parts.path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise ConfigurationError(
            "a Sentinel store URL names the service and optionally the db: "
            "redis+sentinel://host:port,host:port/service_name/db"
        )
    options = _url_options(parts, "redis", query)
    if db:
        options["db"] = int(db)
    asking = {k: v for k, v in options.items() if k in _SENTINEL_OPTIONS}
    asking["retry"] = client_retry()
    sentinel = Sentinel(_locations(parts), sentinel_kwargs=asking, **options)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(service)  # type: ignore[no-untyped-call]
    return sentinel, master
