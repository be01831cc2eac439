"""Lookup cost against the number of stored sessions: ``store.get`` at 1k, 100k, 1M records.

Each store is opened with ``coatcheck.stores.open_store(url)``. A few live
records are created through ``store.save``; the mass is written in bulk in the
store's own layout (checked by reading one back with ``store.get``). A second
store of the same kind, holding 1,000 records throughout, is timed in turn with
the growing one: the per-round ratio grown/reference cancels the machine's
drift between sizes, which are minutes apart.

Both stores cache reads in the process, so two timings: *live* reads the same
few sessions again and again, as a busy user's requests do (cache hits); *random*
reads distinct records with the cache emptied (``store.close()``) before every
slice, so each read is a real lookup in the SQLite file or on the Redis server.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.records import LifetimePolicy, SessionRecord
from coatcheck.stores import SessionStore, open_store

from . import redisdb
from .common import BenchError, check_stall, log, median, paired_ratio

REFERENCE_SIZE = 1000
LIVE = 16  # records created through store.save
BATCH = 1000  # records per Redis pipeline
SLICES = 10  # the two stores take turns this often in a round
RANDOM_KEYS = 4096  # distinct records read by the "random" timings
POLICY = LifetimePolicy()
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    rounds: int
    gets: int  # per timing, at most
    seconds: float  # per timing, at most


def _meta(i: int, now: float) -> dict[str, Any]:
    return {
        "ip": "127.0.0.1",
        "user_agent": USER_AGENT,
        "username": f"user{i}",
        "roles": [],
        "csrf": hashlib.sha256(f"csrf{i}".encode()).hexdigest()[:43],
        "auth_at": now,
    }


class Population:
    """One store and the records it holds: ``LIVE`` saved normally, the rest in bulk."""

    def __init__(self, kind: str, url: str, seed: str) -> None:
        self.kind, self.url, self.seed = kind, url, seed
        self.store: SessionStore = open_store(url)
        self.now = time.time()
        self.live: list[str] = []
        for i in range(LIVE):
            record = POLICY.new_record(store_key(new_session_id()), self.now, user_id=str(i))
            record.meta = _meta(i, self.now)
            self.store.save(record)
            self.live.append(record.key)
        self.bulk = 0

    @property
    def size(self) -> int:
        return LIVE + self.bulk

    def bulk_key(self, i: int) -> str:
        return hashlib.sha256(f"{self.seed}:{i}".encode()).hexdigest()

    def fill_to(self, n: int) -> float:
        """Add bulk records until the store holds ``n``; return the seconds it took."""
        start, first, last = time.monotonic(), self.bulk, max(self.bulk, n - LIVE)
        # Closing drops the Redis store's client cache and its invalidation feed, which
        # would otherwise receive a message per bulk write; the next get subscribes anew.
        self.store.close()
        records = (self._record(i) for i in range(first, last))
        if self.kind == "sqlite":
            self._sqlite_fill(records)
        else:
            self._redis_fill(records)
        self.bulk = last
        check = self.store.get(self.bulk_key(last - 1)) if last else None
        if last and (check is None or check.meta.get("username") != f"user{last - 1}"):
            raise BenchError(f"bulk records in {self.kind} do not read back: layout changed?")
        return time.monotonic() - start

    def _record(self, i: int) -> SessionRecord:
        return SessionRecord(
            key=self.bulk_key(i),
            handle=f"{i:032x}",
            user_id=str(i % 50_000),
            created_at=self.now,
            last_seen_at=self.now,
            expires_at=POLICY.expires_at(self.now, self.now),
            meta=_meta(i, self.now),
        )

    def _sqlite_fill(self, records: Any) -> None:
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        try:
            with conn:  # one transaction
                conn.executemany(
                    "INSERT INTO coatcheck_sessions (key, handle, user_id, created_at, "
                    "last_seen_at, expires_at, meta, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        (
                            r.key,
                            r.handle,
                            r.user_id,
                            r.created_at,
                            r.last_seen_at,
                            r.expires_at,
                            json.dumps(r.meta, separators=(",", ":")),
                            "{}",
                        )
                        for r in records
                    ),
                )
        finally:
            conn.close()

    def _redis_fill(self, records: Any) -> None:
        client = redis.Redis.from_url(self.url.partition("?")[0])
        prefix = self.url.partition("?prefix=")[2]
        ttl = int(POLICY.idle_timeout * 1000)
        pipe = client.pipeline(transaction=False)
        for count, r in enumerate(records, 1):
            fields = {
                "h": r.handle,
                "u": str(r.user_id),
                "c": repr(r.created_at),
                "l": repr(r.last_seen_at),
                "e": repr(r.expires_at),
            }
            fields.update(
                {f"m:{k}": json.dumps(v, separators=(",", ":")) for k, v in r.meta.items()}
            )
            name = f"{prefix}s:{r.key}"
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(name, ttl)
            if count % BATCH == 0:
                pipe.execute()
        pipe.execute()
        client.close()

    def random_keys(self, k: int, rng: random.Random) -> list[str]:
        """Return up to ``k`` keys of distinct bulk records picked at random."""
        return [self.bulk_key(i) for i in rng.sample(range(self.bulk), min(k, self.bulk))]


def time_gets(
    store: SessionStore, keys: list[str], first: int, count: int, seconds: float
) -> float:
    """Return the mean seconds per ``store.get`` over ``count`` calls (fewer if time runs out)."""
    get, n = store.get, 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < count:
        if get(keys[(first + n) % len(keys)]) is None:
            raise BenchError("a stored record was not found")
        n += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    check_stall(elapsed, seconds, f"{n} store.get")
    return elapsed / n


#: What to time: a store, the keys to read in turn, and for cold reads the keys
#: to reconnect and warm the connection with after emptying the cache (None:
#: keep the cache). Warming reads the live records, spread over the whole index.
Turn = tuple[SessionStore, list[str], list[str] | None]


def timed_round(turns: list[Turn], plan: Plan) -> list[float]:
    """Return the mean microseconds per ``get`` of each turn, timed in alternating slices."""
    per_slice = max(1, plan.gets // SLICES)
    means: list[list[float]] = [[] for _ in turns]
    for k in range(SLICES):
        for i in range(len(turns)) if k % 2 else reversed(range(len(turns))):
            store, keys, warm = turns[i]
            if warm is not None:
                store.close()  # empties the read cache
                for key in warm:  # connects again and reads, outside the timing
                    store.get(key)
            budget = plan.seconds / SLICES
            means[i].append(time_gets(store, keys, k * per_slice, per_slice, budget))
    return [sum(m) / len(m) * 1e6 for m in means]


def _variants(pop: Population, keys: list[str]) -> dict[str, Turn]:
    """Return the timings of one population: label -> turn."""
    return {
        "live (cached)": (pop.store, pop.live, None),
        "random (uncached)": (pop.store, keys, pop.live),
    }


def measure(kind: str, urls: tuple[str, str], plan: Plan, seed: str) -> dict[str, Any]:
    """Time ``get`` on the growing store at each size, paired with the reference store."""
    reference = Population(kind, urls[0], seed + "-ref")
    reference.fill_to(REFERENCE_SIZE)
    grown = Population(kind, urls[1], seed + "-grow")
    rng = random.Random(seed)  # noqa: S311 - picking keys, not secrets
    ref_variants = _variants(reference, reference.random_keys(RANDOM_KEYS, rng))
    sizes: dict[int, dict[str, Any]] = {}
    try:
        for size in plan.sizes:
            fill_s = grown.fill_to(size)
            log(f"lookup/{kind}: {grown.size:,} records ({fill_s:.1f} s to fill)")
            grown_variants = _variants(grown, grown.random_keys(RANDOM_KEYS, rng))
            series = {
                what: _series(ref_variants[what], grown_variants[what], plan)
                for what in grown_variants
            }
            sizes[size] = {"fill_s": fill_s, **series}
    finally:
        for population in (reference, grown):
            population.store.close()
    return {"sizes": sizes, "growth": _growth(sizes)}


def _series(ref: Turn, grown: Turn, plan: Plan) -> dict[str, float | None]:
    """Time both in turn for the plan's rounds; return medians and the paired ratio."""
    ref_us: list[float] = []
    grown_us: list[float] = []
    for r in range(plan.rounds + 1):  # round 0 warms caches up and is dropped
        pair = timed_round([ref, grown], plan)
        if r:
            ref_us.append(pair[0])
            grown_us.append(pair[1])
    return {
        "us": median(grown_us),
        "reference_us": median(ref_us),
        "relative": paired_ratio(grown_us, ref_us),
    }


def _growth(sizes: dict[int, dict[str, Any]]) -> dict[str, float | None]:
    """Return, per timing, the relative cost at the largest size / at the smallest."""
    low, high = sizes[min(sizes)], sizes[max(sizes)]
    out: dict[str, float | None] = {}
    for what in (k for k in high if k != "fill_s"):
        a, b = low[what]["relative"], high[what]["relative"]
        out[what] = b / a if a and b and len(sizes) > 1 else None
    return out


def urls(kind: str, folder: Path, prefix: str) -> tuple[str, str]:
    """Return the reference and growing stores' URLs (Redis: each its db and prefix)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'lookup-ref.db'}", f"sqlite:///{folder / 'lookup-grow.db'}"
    return (
        redisdb.url(redisdb.DB_ANCHOR, f"{prefix}ref:"),
        redisdb.url(redisdb.DB_COATCHECK, f"{prefix}grow:"),
    )
