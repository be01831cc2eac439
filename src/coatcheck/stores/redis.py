"""``redis://``, ``redis+cluster://`` and ``redis+sentinel://``: the distributed store.

Redis TTLs do the expiry. URLs:

- ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS): one server.
- ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``
  for TLS): a Redis Cluster through redis-py's ``RedisCluster``; the hosts are
  startup nodes, the rest of the cluster is discovered. A cluster has one
  database, so a db other than 0 is refused.
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``:
  the master that the Sentinels name ``service_name``, through redis-py's
  ``Sentinel.master_for``, which asks the Sentinels again after a failover.
  The credentials are used for the Sentinels and the master alike, as the
  limits library (the login throttle) does with the same URL.

Every form takes ``?prefix=...`` (default ``coatcheck:``); other query options
are redis-py's, as ``redis.Redis.from_url`` reads them.

Layout, under the prefix:

- ``<prefix>s:<key>``, a hash per record: ``h`` handle, ``u`` user id, ``k``
  kind (absent in records written before kinds were stored: then derived
  from the meta's ``"kind"``), ``c``/``l``/``e`` created, last seen and
  expiry times, one field
  ``m:<name>`` per meta key (JSON) and one field ``d:<name>`` per session
  key, so that two requests changing different keys update different fields
  and never overwrite each other.
- ``<prefix>u:<user id>``, a sorted set of that user's session keys. Members
  whose session has gone are dropped when the set is next read.
- ``<prefix>k:<kind>``, a sorted set per :class:`~coatcheck.core.records.RecordKind`
  of the keys of that kind, scored by expiry, so that
  :meth:`RedisSessionStore.count` costs two commands on one key instead of a
  scan of the keyspace. Expired members are trimmed at every save and count.

Cluster: every write that must be atomic touches one key only (a Lua script
on the session hash), so no hash tag is needed and sessions spread over all
the slots. The steps that touch several keys (index a session after saving
it, read a user's sessions, delete them) are not atomic on a single server
either: the index is a hint, checked against the session hashes whenever it
is read. The kind indexes are hints too, kept right by every write and
delete; a write racing a delete of the same record can leave its key
counted, until its expiry at most. Their pipelines are non-transactional, which redis-py's
``ClusterPipeline`` splits by node; :meth:`RedisSessionStore.list_all` scans
every primary. A session hash cannot share a slot with its user's index in
any case: it is addressed by its key alone, and its user changes at login
and logout.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.sentinel import Sentinel

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError, StoreUnavailable
from ..core.records import RecordKind, SessionRecord
from . import redis_scripts
from .base import DecodedRecords, SessionStore, check_record, check_save_arguments, legacy_kind
from .redis_cache import TrackedReadCache
from .redis_urls import client_options, cluster_client, sentinel_master

#: Decoded records kept beside the read cache's hashes, at most.
_DECODES = 50_000

_DATA = "d:"
_META = "m:"


class RedisSessionStore(SessionStore):
    """Keep records in Redis: one server, a Cluster, or the master Sentinels name.

    :param sentinel: the :class:`~redis.sentinel.Sentinel` that finds the
        master ``client`` talks to, if any; closed with the store.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "coatcheck:",
        clock: Clock = system_clock,
        sentinel: Sentinel | None = None,
        client_cache: bool = False,
    ) -> None:
        super().__init__(clock=clock)
        self.client = client
        self.prefix = prefix
        self.sentinel = sentinel
        #: Decoded records beside the read cache's hashes (see :meth:`_decoded`).
        self._decodes = DecodedRecords(_DECODES)
        self.cache: TrackedReadCache | None = None
        if client_cache and isinstance(client, redis.Redis) and sentinel is None:
            names = f"{prefix}s:"
            self.cache = TrackedReadCache(
                client,
                names,
                lambda name: self._decodes.forget(name and name.removeprefix(names)),
            )
        self._save = client.register_script(redis_scripts.SAVE)
        self._update = client.register_script(redis_scripts.UPDATE)
        self._add = client.register_script(redis_scripts.ADD)
        self._touch = client.register_script(redis_scripts.TOUCH)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> RedisSessionStore:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "coatcheck:")
        client_cache = query.pop("client_cache", "on").lower() not in ("off", "0", "false", "no")
        scheme, _, mode = parts.scheme.lower().partition("+")
        if scheme not in ("redis", "rediss") or mode not in ("", "cluster", "sentinel"):
            raise ConfigurationError(f"not a Redis store URL scheme: {parts.scheme!r}")
        if mode == "cluster":
            # RedisCluster connects at once to learn the slots: a cluster
            # that cannot be reached is reported now.
            with _unavailable():
                cluster = cluster_client(parts, scheme, query)
            return cls(cluster, prefix=prefix, clock=clock)
        if mode == "sentinel":
            if scheme == "rediss":
                raise ConfigurationError("TLS to Redis Sentinel is not supported (rediss+sentinel)")
            sentinel, master = sentinel_master(parts, query)
            return cls(master, prefix=prefix, clock=clock, sentinel=sentinel)
        if not parts.path.strip("/").isdigit() and parts.path.strip("/"):
            raise ConfigurationError(
                "bad Redis URL in COATCHECK_STORE_URL: the path is the database number "
                "(redis://host:6379/0)"
            )
        plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
        try:
            client = redis.Redis.from_url(plain, **client_options())
            pool = client.connection_pool
            pool.connection_class(**pool.connection_kwargs)  # unknown options fail here, not later
        except (ValueError, TypeError) as exc:  # a port that is no number, an unknown option
            raise ConfigurationError(f"bad Redis URL in COATCHECK_STORE_URL: {exc}") from None
        return cls(client, prefix=prefix, clock=clock, client_cache=client_cache)

    def _session_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _kind_key(self, kind: RecordKind | str) -> str:
        return f"{self.prefix}k:{RecordKind(kind).value}"

    def _ttl_ms(self, expires_at: float) -> int:
        return max(1, math.ceil((expires_at - self.clock()) * 1000))

    def get(self, key: str) -> SessionRecord | None:
        name = self._session_key(key)
        with _unavailable():
            cache = self.cache
            fields: dict[str, str] = (
                cache.get(name) if cache else self.client.hgetall(name)  # type: ignore[assignment]
            )
        return self._decoded(key, fields)

    def get_pair(
        self, key: str, then: Callable[[SessionRecord], str | None]
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """Read both records with one freshness check of the read cache."""
        cache = self.cache
        if cache is None:
            return super().get_pair(key, then)
        with _unavailable():
            first = self._decoded(key, cache.get(self._session_key(key)))
            if first is None:
                return None, None
            second_key = then(first)
            if second_key is None:
                return first, None
            fields = cache.get_after(self._session_key(second_key))
        return first, self._decoded(second_key, fields)

    def _decoded(self, key: str, fields: dict[str, str]) -> SessionRecord | None:
        """Return the record ``fields`` hold (decoded once per cached hash)."""
        if not fields:
            return None
        if self.cache is None:  # fresh from Redis each time: nothing to keep
            return _record(key, fields)
        return self._decodes.record(key, fields, _record)

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        check_save_arguments(changed, expect)
        check_record(record)
        self._forget(record.key)
        ttl = self._ttl_ms(record.expires_at)
        header = _header(record)
        with _unavailable():
            if changed is None:
                data = {_DATA + k: v for k, v in record.data.items()}
                pairs = _flatten({**header, **_meta_fields(record.meta, record.meta), **data})
                replaced = self._save(keys=[self._session_key(record.key)], args=[ttl, *pairs])
            else:
                values = {_DATA + k: record.data[k] for k in changed if k in record.data}
                values.update(_meta_fields(record.meta, changed_meta))
                gone = [_DATA + k for k in changed if k not in record.data]
                gone += [_META + k for k in changed_meta if k not in record.meta]
                if record.user_id is None:
                    gone.append("u")
                pairs = _flatten({**header, **values})
                field, value = (_DATA + expect[0], expect[1]) if expect else ("", "")
                done, replaced = self._update(
                    keys=[self._session_key(record.key)],
                    args=[ttl, len(pairs) // 2, field, value, *pairs, *gone],
                )
                if not done:
                    return False
            self._index(record, ttl, replaced)
        return True

    def add(self, record: SessionRecord) -> bool:
        check_record(record)
        self._forget(record.key)
        ttl = self._ttl_ms(record.expires_at)
        data = {_DATA + k: v for k, v in record.data.items()}
        pairs = _flatten({**_header(record), **_meta_fields(record.meta, record.meta), **data})
        with _unavailable():
            done = self._add(
                keys=[self._session_key(record.key)], args=[ttl, repr(self.clock()), *pairs]
            )
            if not done:
                return False
            self._index(record, ttl)
        return True

    def _index(self, record: SessionRecord, ttl: int, replaced: str = "") -> None:
        """Index a record just written under its kind and its user."""
        kinds = self._kind_key(record.kind)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(kinds, {record.key: record.expires_at})
        pipe.zremrangebyscore(kinds, "-inf", repr(self.clock()))
        if replaced and replaced != record.kind.value:
            pipe.zrem(self._kind_key(replaced), record.key)
        if record.user_id is not None:
            index = self._user_key(record.user_id)
            pipe.zadd(index, {record.key: record.created_at})
            # The index lives as long as its longest-lived session.
            pipe.pexpire(index, ttl, nx=True)
            pipe.pexpire(index, ttl, gt=True)
        pipe.execute()

    def count(self, kind: RecordKind) -> int:
        """Return how many keys the kind's index holds once the expired are trimmed."""
        kinds = self._kind_key(kind)
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(kinds, "-inf", repr(self.clock()))
            pipe.zcard(kinds)
            found = pipe.execute()[1]
        return int(found)

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        self._forget(key)
        ttl = self._ttl_ms(expires_at)
        with _unavailable():
            user_id, kind = self._touch(
                keys=[self._session_key(key)], args=[repr(last_seen_at), repr(expires_at), ttl]
            )
            if not (user_id or kind):
                return
            pipe = self.client.pipeline(transaction=False)
            if kind:
                # XX: a touch racing a delete must not put the key back.
                pipe.zadd(self._kind_key(kind), {key: expires_at}, xx=True)
            if user_id:
                # The index must outlive every session it lists, or revoking all of a
                # user's sessions would miss the ones kept alive by touches.
                pipe.pexpire(self._user_key(user_id), ttl, gt=True)
            pipe.execute()

    def delete(self, key: str) -> None:
        self._forget(key)
        with _unavailable():
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self._session_key(key))
            for kind in RecordKind:  # one round trip, instead of reading the kind first
                pipe.zrem(self._kind_key(kind), key)
            pipe.execute()

    def _forget(self, key: str) -> None:
        if self.cache is not None:
            self.cache.forget(self._session_key(key))

    def _members(self, user_id: str) -> list[tuple[str, dict[str, str]]]:
        """Return (key, fields) for the user's live sessions; drop dead index members."""
        index = self._user_key(user_id)
        keys: list[str] = self.client.zrange(index, 0, -1)  # type: ignore[assignment]
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._session_key(key))
        found = list(zip(keys, pipe.execute(), strict=True))
        dead = [key for key, fields in found if not fields or fields.get("u") != user_id]
        if dead:
            self.client.zrem(index, *dead)
        return [(key, fields) for key, fields in found if key not in dead]

    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        now = self.clock()
        with _unavailable():
            members = self._members(user_id)
        records = [_record(key, fields) for key, fields in members]
        return sorted((r for r in records if r.expires_at > now), key=lambda r: r.created_at)

    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        """Return up to ``limit`` records, scanning the keyspace (an administrator's view)."""
        now = self.clock()
        pattern, start = f"{self.prefix}s:*", len(self.prefix) + 2
        records: list[SessionRecord] = []
        with _unavailable():
            for name in self.client.scan_iter(match=pattern, count=500):
                fields: dict[str, str] = self.client.hgetall(name)  # type: ignore[assignment]
                if fields:
                    record = _record(name[start:], fields)
                    if record.expires_at > now:
                        records.append(record)
                if len(records) >= limit:
                    break
        return sorted(records, key=lambda r: r.last_seen_at, reverse=True)

    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        with _unavailable():
            doomed = [(key, fields) for key, fields in self._members(user_id) if key != keep]
            for key, _ in doomed:
                self._forget(key)
            if doomed:
                pipe = self.client.pipeline(transaction=False)
                for key, fields in doomed:
                    pipe.delete(self._session_key(key))
                    pipe.zrem(self._kind_key(_kind(fields)), key)
                pipe.zrem(self._user_key(user_id), *(key for key, _ in doomed))
                pipe.execute()
        return len(doomed)

    def purge_expired(self) -> int:
        """Return 0: Redis drops expired records itself (TTL)."""
        return 0

    def ping(self) -> None:
        with _unavailable():
            if isinstance(self.client, redis.RedisCluster):
                # Every primary holds some of the sessions.
                self.client.ping(target_nodes=redis.RedisCluster.PRIMARIES)
            else:
                self.client.ping()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.client.close()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                client.close()


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        # redis-py's messages name the host and port and the reason, never the password.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise StoreUnavailable(
            f"the Redis session store failed: {type(exc).__name__}: {reason}"
        ) from exc


def _header(record: SessionRecord) -> dict[str, str]:
    header = {
        "h": record.handle,
        "k": record.kind.value,
        "c": repr(record.created_at),
        "l": repr(record.last_seen_at),
        "e": repr(record.expires_at),
    }
    if record.user_id is not None:
        header["u"] = record.user_id
    return header


def _meta_fields(meta: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    return {_META + k: json.dumps(meta[k], separators=(",", ":")) for k in names if k in meta}


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]


def _kind(fields: dict[str, str]) -> RecordKind:
    """Return the kind of a record hash; derived from its meta if written before kinds."""
    if "k" in fields:
        return RecordKind(fields["k"])
    meta_kind = fields.get(_META + "kind")
    return legacy_kind(json.loads(meta_kind) if meta_kind is not None else None)


def _record(key: str, fields: dict[str, str]) -> SessionRecord:
    return SessionRecord(
        key=key,
        handle=fields["h"],
        user_id=fields.get("u"),
        kind=_kind(fields),
        created_at=float(fields["c"]),
        last_seen_at=float(fields["l"]),
        expires_at=float(fields["e"]),
        meta={
            name[len(_META) :]: json.loads(v)
            for name, v in fields.items()
            if name.startswith(_META)
        },
        data={name[len(_DATA) :]: v for name, v in fields.items() if name.startswith(_DATA)},
    )
