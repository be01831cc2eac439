"""Turn a Redis store URL into redis-py clients: one server, a Cluster, or Sentinels.

The URL forms are described in :mod:`coatcheck.stores.redis`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..core.errors import ConfigurationError

# What the clients asking the Sentinels for the master take from the URL.
_SENTINEL_OPTIONS = frozenset({"username", "password", "socket_timeout", "socket_connect_timeout"})


def client_options() -> dict[str, Any]:
    """Return the options coatcheck gives every client it opens."""
    # Fail closed fast: a short timeout and two quick retries, not redis-py's
    # default of ten retries with up to a second between them.
    return {
        "decode_responses": True,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.005), 2),
    }


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
    asking["retry"] = client_options()["retry"]
    sentinel = Sentinel(_locations(parts), sentinel_kwargs=asking, **options)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(service)  # type: ignore[no-untyped-call]
    return sentinel, master
