"""Count store writes where they land: SQLite statements and Redis commands.

:class:`SqliteWrites` wraps ``sqlite3.connect`` while it is active, so every
connection opened then (coatcheck's store, SQLAlchemy's pool) reports its
statements to a trace callback: the writes by table, and every statement by
database file. :class:`RedisWrites` runs ``MONITOR`` in a
thread and sorts what one db received between two ``ECHO`` markers.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from . import redisdb
from .common import BenchError

_WRITE_SQL = re.compile(
    r"\s*(INSERT|REPLACE|UPDATE|DELETE)\b(?:\s+OR\s+\w+)?(?:\s+INTO|\s+FROM)?\s+[\"`\[]?(\w+)",
    re.IGNORECASE,
)
_SCRIPTS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}


class SqliteWrites:
    """Trace the write statements of every SQLite connection opened while active."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        #: Every statement (reads, writes, BEGIN and COMMIT too) by database file name.
        self.statements: Counter[str] = Counter()
        self._original = sqlite3.connect

    def __enter__(self) -> SqliteWrites:
        original, counts, statements = self._original, self.counts, self.statements

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = original(*args, **kwargs)
            database = Path(str(args[0] if args else kwargs.get("database", "?"))).name

            def trace(statement: str) -> None:
                statements[database] += 1
                match = _WRITE_SQL.match(statement)
                if match:
                    counts[f"{match.group(1).upper()} {match.group(2)}"] += 1

            conn.set_trace_callback(trace)
            return conn

        sqlite3.connect = sqlite3.dbapi2.connect = connect  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        sqlite3.connect = sqlite3.dbapi2.connect = self._original

    def snapshot(self) -> Counter[str]:
        """Return the write counts so far (subtract two snapshots for a segment)."""
        return Counter(self.counts)

    def statements_snapshot(self) -> Counter[str]:
        """Return the statements so far by database file (subtract two for a segment)."""
        return Counter(self.statements)

    def rows(self, folder: Path) -> int:
        """Return the rows in every table of every SQLite file under ``folder``."""
        total = 0
        for path in sorted(folder.rglob("*.db"))[:100]:
            conn = self._original(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                for (table,) in tables.fetchall():
                    total += conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608
            finally:
                conn.close()
        return total


class RedisWrites:
    """``MONITOR`` the shared server; count what one db received between markers."""

    MAX_EVENTS = 1_000_000

    def __init__(self) -> None:
        self.client = redis.Redis(host=redisdb.HOST, port=redisdb.PORT, socket_timeout=30)
        self.events: list[tuple[int, str, str, str]] = []  # db, client type, command, arg
        self.marks: dict[str, int] = {}
        self.flags: dict[str, bool] = {}
        self.ready = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)

    def __enter__(self) -> RedisWrites:
        self.monitor = self.client.monitor().__enter__()  # type: ignore[no-untyped-call]
        self.thread.start()
        self.mark()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.client.echo("bench-stop")
        self.thread.join(timeout=10)
        self.monitor.__exit__(None, None, None)
        self.client.close()

    def _read(self) -> None:
        while not self.stopping and len(self.events) < self.MAX_EVENTS:
            try:
                event = self.monitor.next_command()
            except (redis.RedisError, ValueError):
                return
            command, _, rest = event["command"].partition(" ")
            with self.ready:
                if command == "ECHO" and rest.startswith("bench-mark-"):
                    self.marks[rest] = len(self.events)
                    self.ready.notify_all()
                self.events.append((event["db"], event["client_type"], command.lower(), rest))

    def mark(self) -> int:
        """Put a marker in the stream; return its position once it has been read."""
        label = f"bench-mark-{secrets.token_hex(6)}"
        self.client.echo(label)
        deadline = time.monotonic() + 15
        with self.ready:
            while label not in self.marks:
                if time.monotonic() > deadline or not self.thread.is_alive():
                    raise BenchError("redis MONITOR lost a marker")
                self.ready.wait(timeout=0.5)
            return self.marks[label]

    def _is_write(self, command: str) -> bool:
        if command not in self.flags:
            info: Any = self.client.execute_command("COMMAND", "INFO", command)  # type: ignore[no-untyped-call]
            entry = info.get(command) if isinstance(info, dict) else None
            flags = entry.get("flags", []) if isinstance(entry, dict) else []
            self.flags[command] = any(f in ("write", b"write") for f in flags)
        return self.flags[command]

    def count(self, start: int, end: int, db: int) -> dict[str, Any]:
        """Return the writes to ``db`` between two marks.

        ``writes`` counts round trips that wrote: a write command, or a script
        that ran at least one; ``write_commands`` counts every command that
        wrote, those run inside scripts included.
        """
        with self.ready:
            events = [e for e in self.events[start + 1 : end] if e[0] == db]
        writes, commands = 0, Counter[str]()
        in_script = script_wrote = False
        for _db, kind, command, _arg in events:
            if kind == "lua":
                if self._is_write(command):
                    commands[command] += 1
                    if in_script and not script_wrote:
                        writes, script_wrote = writes + 1, True
                continue
            in_script, script_wrote = command in _SCRIPTS, False
            if not in_script and self._is_write(command):
                commands[command] += 1
                writes += 1
        return {"writes": writes, "write_commands": dict(commands), "commands": len(events)}
