"""Store traffic: writes per authenticated read-only request, records per anonymous one.

In-process, counted at the store (not timed): one logged-in session sends
``n`` ``GET /api/me``, then (coatcheck only) ``n`` ``GET /api/authz/auth-request``
(:mod:`.forwardauth`); then ``n`` anonymous ``GET /api/csrf`` and ``n``
anonymous ``GET /`` (no cookie at all, as a flood would). Every segment also
counts the SQL statements sent to each SQLite file.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import forwardauth, redisdb
from .apps import AppSpec, specs
from .clients import InProcess, headers, log_in
from .common import BenchError, log
from .counters import RedisWrites, SqliteWrites


@dataclass(frozen=True)
class Plan:
    requests: int  # per segment
    seconds: float  # per segment, at most


SEGMENTS = (
    ("me", "/api/me", True),
    (forwardauth.NAME, forwardauth.PATH, True),  # coatcheck only
    ("anon_csrf", "/api/csrf", False),
    ("anon_root", "/", False),
)


def measure(
    store: str, base: Path, secret: str, plan: Plan, dbs: dict[int, redisdb.OwnDb]
) -> dict[str, Any]:
    """Return, for coatcheck and the anchor, writes and records per segment."""
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        monitor = stack.enter_context(RedisWrites()) if store == "redis" else None
        for spec in specs(store, base, secret, ("coatcheck", "anchor")):
            try:
                result[spec.name] = _one(spec, plan, monitor, dbs)
            except Exception as exc:  # one broken app must not hide the other's figures
                result[spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"traffic/{store}: {spec.name} unavailable: {exc}")
    return result


def _one(
    spec: AppSpec,
    plan: Plan,
    monitor: RedisWrites | None,
    dbs: dict[int, redisdb.OwnDb],
) -> dict[str, Any]:
    """Log in once, then send each segment's requests and count what the store saw."""
    counter = _Counter(spec, monitor, dbs)
    with SqliteWrites() as counter.sql:
        before = counter.take()
        client = InProcess(spec.build())
        cookie = log_in(client, f"{spec.name}/{spec.store}/traffic")
        # Logging in writes a session: seeing it proves the counters see the store.
        login_writes = counter.since(before)["writes"]
        if not login_writes:
            raise BenchError("no store write was counted while logging in: counters broken?")
        out: dict[str, Any] = {"sessions": 1, "login_writes": login_writes}
        for segment, path, authenticated in SEGMENTS:
            if segment == forwardauth.NAME:
                if spec.name != "coatcheck":
                    continue
                forwardauth.check(client, cookie, f"coatcheck/{spec.store}/traffic")
                hdrs = forwardauth.request_headers(cookie)
            else:
                hdrs = headers(cookie if authenticated else None)
            before = counter.take()
            sent = _send(client, path, hdrs, plan.requests, plan.seconds)
            out[segment] = {**sent, **counter.since(before)}
    # A read-only request may touch its session at most once a minute.
    for segment in ("me", forwardauth.NAME):
        if segment in out:
            minutes = max(1, math.ceil(out[segment]["seconds"] / 60))
            out[segment]["write_bound"] = out["sessions"] * minutes
    return out


def _send(
    client: InProcess, path: str, hdrs: dict[str, str], n: int, cap_s: float
) -> dict[str, Any]:
    """Send up to ``n`` ``GET path`` within ``cap_s`` seconds; return counts and statuses."""
    statuses: dict[int, int] = {}
    start = time.monotonic()
    done = 0
    for _ in range(n):
        status = client("GET", path, hdrs).status
        statuses[status] = statuses.get(status, 0) + 1
        done += 1
        if time.monotonic() - start > cap_s:
            break
    return {"requests": done, "seconds": time.monotonic() - start, "statuses": statuses}


class _Counter:
    """Everything one app's store saw: SQLite statements, Redis writes, records."""

    sql: SqliteWrites

    def __init__(
        self, spec: AppSpec, monitor: RedisWrites | None, dbs: dict[int, redisdb.OwnDb]
    ) -> None:
        self.folder = spec.folder
        self.monitor = monitor if spec.redis_db is not None else None
        self.db = dbs[spec.redis_db] if spec.redis_db is not None else None

    def take(self) -> tuple[Counter[str], int, int, int, Counter[str]]:
        """Return a snapshot: SQLite writes, records, a MONITOR mark, SQLite statements."""
        keys = self.db.size() if self.db else 0
        mark = self.monitor.mark() if self.monitor else 0
        rows = self.sql.rows(self.folder)
        return self.sql.snapshot(), rows, keys, mark, self.sql.statements_snapshot()

    def since(self, before: tuple[Counter[str], int, int, int, Counter[str]]) -> dict[str, Any]:
        """Return the writes, records and SQL statements since the snapshot ``before``."""
        writes, rows, keys, mark, statements = before
        sql_writes = self.sql.snapshot() - writes
        out: dict[str, Any] = {"sqlite_writes": dict(sql_writes)}
        out["sql"] = dict(self.sql.statements_snapshot() - statements)
        out["records"] = self.sql.rows(self.folder) - rows
        out["writes"] = sum(sql_writes.values())
        if self.db and self.monitor:
            out["records"] += self.db.size() - keys
            out["redis"] = self.monitor.count(mark, self.monitor.mark(), self.db.db)
            out["writes"] += out["redis"]["writes"]
        return out
