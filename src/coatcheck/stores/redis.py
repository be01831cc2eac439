"""``redis://host:port/db``: the distributed store; Redis TTLs do the expiry.

Layout, under a prefix (``coatcheck:`` unless the URL says ``?prefix=...``):

- ``<prefix>s:<key>``, a hash per session: ``h`` handle, ``u`` user id,
  ``c``/``l``/``e`` created, last seen and expiry times, one field
  ``m:<name>`` per meta key (JSON) and one field ``d:<name>`` per session
  key, so that two requests changing different keys update different fields
  and never overwrite each other.
- ``<prefix>u:<user id>``, a sorted set of that user's session keys. Members
  whose session has gone are dropped when the set is next read.

Every multi-step write touches one key only (a Lua script), so the store
works unchanged with Redis Cluster (``redis+cluster://host:port``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator, Set
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..core.clock import Clock, system_clock
from ..core.errors import StoreUnavailable
from ..core.records import SessionRecord
from .base import SessionStore, check_save_arguments

_DATA = "d:"
_META = "m:"
# Write the whole record: replace the hash, set its TTL.
# KEYS[1] session; ARGV[1] ttl ms, ARGV[2..] field/value pairs.
_SAVE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
# Merge into an existing record only; never re-create a revoked one. With an
# expected field (ARGV[3] non-empty), apply only if it holds ARGV[4].
# KEYS[1] session; ARGV[1] ttl ms, ARGV[2] number of pairs n, ARGV[3] expected
# field or "", ARGV[4] expected value, then n pairs, then names to delete.
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[4] then return 0 end
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + 2 * n))
if #ARGV > 4 + 2 * n then redis.call('HDEL', KEYS[1], unpack(ARGV, 5 + 2 * n)) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
# KEYS[1] session; ARGV[1] last seen, ARGV[2] expires at, ARGV[3] ttl ms.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisSessionStore(SessionStore):
    """Keep records in Redis (standalone, or Cluster through redis-py's own client)."""

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "coatcheck:",
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(clock=clock)
        self.client = client
        self.prefix = prefix
        self._save = client.register_script(_SAVE)
        self._update = client.register_script(_UPDATE)
        self._touch = client.register_script(_TOUCH)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> RedisSessionStore:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "coatcheck:")
        scheme, cluster = parts.scheme.removesuffix("+cluster"), parts.scheme.endswith("+cluster")
        plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
        # Fail closed fast: a short timeout and two quick retries, not redis-py's
        # default of ten retries with up to a second between them.
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(ExponentialBackoff(cap=0.05, base=0.005), 2),
        }
        client: redis.Redis | redis.RedisCluster
        if cluster:
            client = redis.RedisCluster.from_url(plain, **options)
        else:
            client = redis.Redis.from_url(plain, **options)
        return cls(client, prefix=prefix, clock=clock)

    def _session_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _ttl_ms(self, expires_at: float) -> int:
        return max(1, math.ceil((expires_at - self.clock()) * 1000))

    def get(self, key: str) -> SessionRecord | None:
        with _unavailable():
            fields: dict[str, str] = self.client.hgetall(self._session_key(key))  # type: ignore[assignment]
        return _record(key, fields) if fields else None

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        check_save_arguments(changed, expect)
        ttl = self._ttl_ms(record.expires_at)
        header = _header(record)
        with _unavailable():
            if changed is None:
                data = {_DATA + k: v for k, v in record.data.items()}
                pairs = _flatten({**header, **_meta_fields(record.meta, record.meta), **data})
                self._save(keys=[self._session_key(record.key)], args=[ttl, *pairs])
            else:
                values = {_DATA + k: record.data[k] for k in changed if k in record.data}
                values.update(_meta_fields(record.meta, changed_meta))
                gone = [_DATA + k for k in changed if k not in record.data]
                gone += [_META + k for k in changed_meta if k not in record.meta]
                if record.user_id is None:
                    gone.append("u")
                pairs = _flatten({**header, **values})
                field, value = (_DATA + expect[0], expect[1]) if expect else ("", "")
                done = self._update(
                    keys=[self._session_key(record.key)],
                    args=[ttl, len(pairs) // 2, field, value, *pairs, *gone],
                )
                if not done:
                    return False
            if record.user_id is not None:
                self._index(record.user_id, record.key, record.created_at, ttl)
        return True

    def _index(self, user_id: str, key: str, created_at: float, ttl: int) -> None:
        index = self._user_key(user_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(index, {key: created_at})
        # The index lives as long as its longest-lived session.
        pipe.pexpire(index, ttl, nx=True)
        pipe.pexpire(index, ttl, gt=True)
        pipe.execute()

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        with _unavailable():
            self._touch(
                keys=[self._session_key(key)],
                args=[repr(last_seen_at), repr(expires_at), self._ttl_ms(expires_at)],
            )

    def delete(self, key: str) -> None:
        with _unavailable():
            self.client.delete(self._session_key(key))

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
            doomed = [key for key, _ in self._members(user_id) if key != keep]
            if doomed:
                pipe = self.client.pipeline(transaction=False)
                for key in doomed:
                    pipe.delete(self._session_key(key))
                pipe.zrem(self._user_key(user_id), *doomed)
                pipe.execute()
        return len(doomed)

    def purge_expired(self) -> int:
        """Return 0: Redis drops expired records itself (TTL)."""
        return 0

    def ping(self) -> None:
        with _unavailable():
            self.client.ping()

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"the Redis session store failed: {type(exc).__name__}") from exc


def _header(record: SessionRecord) -> dict[str, str]:
    header = {
        "h": record.handle,
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


def _record(key: str, fields: dict[str, str]) -> SessionRecord:
    return SessionRecord(
        key=key,
        handle=fields["h"],
        user_id=fields.get("u"),
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
