"""The Redis at 127.0.0.1:6379, shared with others: a db of our own, our keys only.

Nothing here flushes a database. :class:`OwnDb` remembers the keys a db held
when the run began and deletes only the ones added since.
"""

from __future__ import annotations

import time

import redis

from .common import BenchError, log

HOST, PORT = "127.0.0.1", 6379
#: coatcheck's db and the anchor's; the tests use 9, shared/bench 14 and 15.
DB_COATCHECK, DB_ANCHOR = 12, 13
#: A db holding more keys than this at the start is someone else's: refuse it.
MAX_FOREIGN_KEYS = 10_000
BATCH = 1000


def url(db: int, prefix: str | None = None) -> str:
    """Return the URL of one db, with a coatcheck key prefix if given."""
    return f"redis://{HOST}:{PORT}/{db}" + (f"?prefix={prefix}" if prefix else "")


def available() -> str | None:
    """Return why Redis can't be used, or ``None`` when it answers."""
    try:
        redis.Redis(host=HOST, port=PORT, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"no Redis at {HOST}:{PORT} ({type(exc).__name__})"
    return None


class OwnDb:
    """One db of the shared server, cleaned of what this run added."""

    def __init__(self, db: int) -> None:
        self.db = db
        self.client = redis.Redis(host=HOST, port=PORT, db=db, socket_timeout=30)
        self.before = set(self._scan("*", MAX_FOREIGN_KEYS + 1))
        if len(self.before) > MAX_FOREIGN_KEYS:
            raise BenchError(f"redis db {db} holds over {MAX_FOREIGN_KEYS} keys: not ours")
        if self.before:
            log(f"redis db {db} already holds {len(self.before)} keys; they are left alone")

    def _scan(self, pattern: str, cap: int) -> list[bytes]:
        keys: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=5000):
            keys.append(key)
            if len(keys) >= cap:
                break
        return keys

    def size(self) -> int:
        """Return the number of keys in the db."""
        return int(self.client.dbsize())

    def delete_matching(self, pattern: str, *, cap: int = 3_000_000, seconds: float = 300) -> int:
        """Delete the keys matching ``pattern`` (ours by their prefix); return how many."""
        deadline = time.monotonic() + seconds
        done = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=10_000):
            if key in self.before:
                continue
            batch.append(key)
            if len(batch) >= BATCH:
                done += int(self.client.unlink(*batch))
                batch = []
            if done >= cap or time.monotonic() > deadline:
                log(f"redis db {self.db}: stopped deleting {pattern} after {done} keys")
                break
        if batch:
            done += int(self.client.unlink(*batch))
        return done

    def clean(self) -> int:
        """Delete every key added since the start; return how many."""
        return self.delete_matching("*")

    def close(self) -> None:
        """Close the connection."""
        self.client.close()
