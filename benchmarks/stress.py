"""SPEC §11 under stress: slow clients, and the time to 503 when the store freezes.

Run it with ``make load`` (after ``benchmarks.load``; never part of ``make test``), or::

    python -m benchmarks.stress [--slow-clients 500] [--slow-seconds 8] [--json PATH]

Two stages, each with its own ``coatcheck serve --workers 2`` on 127.0.0.1,
a fresh instance folder and a free port:

**Slow clients** (SQLite sessions and users). One user is registered and
logged in (``GET /api/csrf``, ``POST /api/login`` with ``X-CSRF-Token``).
One client measures ``GET /healthz`` and the user's ``GET /api/me`` in turn,
one connection per request, first alone (``--baseline-seconds``), then while
``--slow-clients`` connections each send ``GET /healthz HTTP/1.1``, a
``Host`` line, and then one byte of a header line that never ends every
``--tick`` seconds for ``--slow-seconds``. Reported per route: requests,
p50, p99, max, answers other than 200 and requests with no answer; and how
many slow connections the server closed (``coatcheck serve`` gives a client
10 s to send its headers, so a ``--slow-seconds`` of 10 or more sees them
closed; the default, 8, keeps them all open to the end). The bound: a p99 under 250 ms, every
answer a 200.

**Frozen store** (Redis sessions). A private ``redis-server`` (no
persistence) on a free port is the session store (``COATCHECK_STORE_URL``;
``COATCHECK_STORE_TIMEOUT`` is left at its default). A user is logged in,
then, ``--rounds`` times: the server is left idle for twice the read cache's
liveness window (a session read within it may be answered, exactly, from the
cache: ``coatcheck.stores.redis_cache``), ``redis-server`` is stopped with
SIGSTOP (sockets open, nothing answers) and at once, in parallel, the user's
``GET /api/me``, ``GET /readyz`` and a ``POST /api/login`` (a CSRF token
fetched beforehand) are sent; each one's time from sending to its answer is
measured. After ``--freeze-seconds`` (or once every answer is in, if later)
SIGCONT, and the same server must answer 200 again to ``/readyz`` and to the
user's ``/api/me`` (the time from SIGCONT is the recovery time), and a new
login must succeed. The bound: every answer a 503 within 1 s, and recovery
without a restart.

The report, markdown on stdout (progress on stderr), gives every figure and
the verdict; the exit status is 1 when a bound is not met, a stage fails, or
a server logged a traceback. Every wait is bounded; the servers (by process
group) and ``redis-server`` are stopped at the end whatever happens, and the
temporary folder is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from coatcheck.service.server import HEADER_TIMEOUT_MS, raise_open_files_limit
from coatcheck.stores.redis_cache import LIVENESS_SECONDS

from .common import Processes, free_port, log
from .load import Answer, ProtocolError, http, machine, percentile

#: SPEC §11: the 99th percentile of a request's latency among slow clients stays under this.
SLOW_P99_BOUND = 0.25
#: SPEC §11: a request that needs a frozen store answers 503 within this.
FROZEN_BOUND = 1.0
#: Fewer measured requests than this among slow clients means the measuring client stalled.
MIN_SAMPLES = 20
#: Seconds a measuring request may take before it counts as unanswered.
REQUEST_TIMEOUT = 5.0
#: Seconds a request sent to a frozen store may take before it counts as unanswered.
FROZEN_TIMEOUT = 5.0
#: Seconds the server may take to answer after SIGCONT.
RECOVERY_TIMEOUT = 15.0
#: Seconds ``coatcheck serve`` and ``redis-server`` may take to start answering.
START_TIMEOUT = 60.0
#: Idle time before each freeze: no session read may be answered from the read cache.
QUIET_SECONDS = 2 * LIVENESS_SECONDS
#: The bytes every slow client sends first: a request whose headers never end.
SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
PASSWORD = f"stress-{secrets.token_hex(8)}-test"
ROUTES = ("/healthz", "/api/me")
FROZEN_ROUTES = ("GET /api/me", "GET /readyz", "POST /api/login")

T = TypeVar("T")


class StressError(Exception):
    """A stage could not be run as planned; the message goes in the report."""


@dataclass
class Exchange:
    """One request: its status (``None``: no answer), time to answer, and why none came."""

    status: int | None
    seconds: float
    error: str = ""
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    def cell(self) -> str:
        what = str(self.status) if self.status is not None else f"no answer ({self.error})"
        return f"{what} in {self.seconds:.3f} s"


class Session:
    """An API client with a cookie jar and a CSRF token, one connection per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None

    async def call(
        self, method: str, path: str, payload: Any = None, timeout: float = REQUEST_TIMEOUT
    ) -> Exchange:
        headers = {"Origin": f"http://127.0.0.1:{self.port}", "User-Agent": "coatcheck-stress/1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        body = None if payload is None else json.dumps(payload).encode()
        started = time.perf_counter()
        try:
            answer: Answer = await asyncio.wait_for(
                http(self.port, method, path, headers, body), timeout
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            return Exchange(None, time.perf_counter() - started, type(exc).__name__)
        seconds = time.perf_counter() - started
        for name, value in answer.cookies.items():
            if value is None:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Exchange(answer.status, seconds, body=answer.body)

    async def fetch_csrf(self) -> None:
        got = await self.call("GET", "/api/csrf")
        if got.status != 200:
            raise StressError(f"GET /api/csrf: {got.cell()}")
        self.csrf = got.json()["csrf_token"]

    async def register(self, username: str) -> None:
        await self.fetch_csrf()
        got = await self.call("POST", "/api/register", {"username": username, "password": PASSWORD})
        if got.status != 201:
            raise StressError(f"POST /api/register: {got.cell()}")

    async def log_in(self, username: str) -> Exchange:
        """Log in from a fresh jar (CSRF token, login); return the login's exchange."""
        self.cookies.clear()
        self.csrf = None
        await self.fetch_csrf()
        got = await self.call("POST", "/api/login", {"username": username, "password": PASSWORD})
        if got.status == 200:
            self.csrf = got.json().get("csrf_token") or self.csrf
        return got


async def logged_in(port: int, username: str) -> Session:
    """Register ``username`` and return a new session logged in as it."""
    await Session(port).register(username)
    session = Session(port)
    got = await session.log_in(username)
    if got.status != 200:
        raise StressError(f"POST /api/login: {got.cell()}")
    return session


async def within(seconds: float, what: str, awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise StressError(f"{what} did not finish within {seconds:.0f} s") from None


async def wait_answering(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``/healthz`` answers 200 (bounded), or fail if the server exits."""
    deadline = time.monotonic() + START_TIMEOUT
    probe = Session(port)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StressError(f"coatcheck serve exited ({proc.returncode}); see its log")
        if (await probe.call("GET", "/healthz", timeout=2.0)).status == 200:
            return
        await asyncio.sleep(0.1)
    raise StressError(f"coatcheck serve did not answer within {START_TIMEOUT:.0f} s")


async def wait_redis(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``redis-server`` answers ``PING`` (bounded)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StressError(f"redis-server exited ({proc.returncode}); see its log")
        with contextlib.suppress(OSError, TimeoutError):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
            try:
                writer.write(b"PING\r\n")
                if await asyncio.wait_for(reader.readline(), 1.0) == b"+PONG\r\n":
                    return
            finally:
                writer.close()
        await asyncio.sleep(0.1)
    raise StressError(f"redis-server did not answer within {START_TIMEOUT:.0f} s")


# -- Slow clients ---------------------------------------------------------------------------


@dataclass
class Series:
    """The measured requests to one route."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, got: Exchange) -> None:
        self.latencies.append(got.seconds)  # an unanswered request counts with its wait
        if got.status is None:
            self.failures[got.error] += 1
        else:
            self.statuses[got.status] += 1

    def summary(self) -> dict[str, Any]:
        values = self.latencies
        ms = {
            f"p{p}_ms": round(percentile(values, p) * 1000, 1) if values else None for p in (50, 99)
        }
        return {
            "requests": len(values),
            **ms,
            "max_ms": round(max(values) * 1000, 1) if values else None,
            "non_200": sum(n for status, n in self.statuses.items() if status != 200),
            "no_answer": sum(self.failures.values()),
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "errors": dict(self.failures),
        }


@dataclass
class SlowConnection:
    """A client that trickles its headers; ``ended`` is when the server answered or hung up."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float
    sent: int = 0
    ended: float | None = None
    reply: bytes = b""
    watcher: asyncio.Task[None] | None = None

    async def watch(self) -> None:
        with contextlib.suppress(OSError):
            self.reply = await self.reader.read(64)
        self.ended = time.monotonic()

    def open(self) -> bool:
        return self.ended is None and not self.writer.is_closing()


async def open_slow(port: int, count: int) -> tuple[list[SlowConnection], Counter[str]]:
    """Open ``count`` slow connections, 50 at a time; return them and why others failed."""
    slow: list[SlowConnection] = []
    failed: Counter[str] = Counter()
    for start in range(0, count, 50):
        batch = await asyncio.gather(
            *(
                asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10.0)
                for _ in range(min(50, count - start))
            ),
            return_exceptions=True,
        )
        for opened in batch:
            if isinstance(opened, BaseException):
                failed[type(opened).__name__] += 1
                continue
            reader, writer = opened
            conn = SlowConnection(reader, writer, time.monotonic())
            writer.write(SLOW_REQUEST)
            conn.sent = len(SLOW_REQUEST)
            conn.watcher = asyncio.create_task(conn.watch())
            slow.append(conn)
    return slow, failed


async def trickle(slow: list[SlowConnection], tick: float, end: float) -> None:
    """Send every open slow connection one more header byte each ``tick`` until ``end``."""
    next_tick = time.monotonic()
    while next_tick < end:
        for conn in slow:
            if conn.open():
                conn.writer.write(b"X")
                conn.sent += 1
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


async def measure(pairs: list[tuple[str, Session]], series: dict[str, Series], end: float) -> None:
    """Request each (path, session) in turn until ``end``."""
    while time.monotonic() < end:
        for path, session in pairs:
            series[path].add(await session.call("GET", path))


async def close_slow(slow: list[SlowConnection]) -> None:
    for conn in slow:
        if conn.watcher is not None:
            conn.watcher.cancel()
        conn.writer.close()
    await asyncio.gather(*(c.watcher for c in slow if c.watcher), return_exceptions=True)


async def slow_stage(args: argparse.Namespace, port: int, proc: subprocess.Popen[bytes]) -> Any:
    await wait_answering(port, proc)
    user = await logged_in(port, "stress-slow")
    anonymous = Session(port)
    pairs = [("/healthz", anonymous), ("/api/me", user)]
    baseline = {path: Series() for path in ROUTES}
    log(f"baseline: {args.baseline_seconds} s without slow clients")
    await measure(pairs, baseline, time.monotonic() + args.baseline_seconds)
    log(f"opening {args.slow_clients} slow connections")
    slow, not_opened = await open_slow(port, args.slow_clients)
    started = time.monotonic()
    end = started + args.slow_seconds
    under = {path: Series() for path in ROUTES}
    try:
        log(
            f"{len(slow)} slow clients: a header byte every {args.tick} s for {args.slow_seconds} s"
        )
        await asyncio.gather(trickle(slow, args.tick, end), measure(pairs, under, end))
        closed = [c for c in slow if not c.open()]
        lived = sorted((c.ended or time.monotonic()) - c.opened for c in closed)
        replies = Counter(c.reply.split(b"\r\n", 1)[0].decode("latin-1") for c in closed)
    finally:
        await close_slow(slow)
    after = {path: (await session.call("GET", path)).status for path, session in pairs}
    return {
        "baseline": {path: s.summary() for path, s in baseline.items()},
        "slow": {path: s.summary() for path, s in under.items()},
        "connections": {
            "asked": args.slow_clients,
            "opened": len(slow),
            "not_opened": dict(not_opened),
            "closed_by_server": len(closed),
            "closed_after_s": [round(lived[0], 2), round(lived[-1], 2)] if lived else None,
            "server_replies": {k or "none": n for k, n in replies.items()},
            "bytes_sent_each": max((c.sent for c in slow), default=0),
        },
        "after": after,
    }


def slow_failures(figures: dict[str, Any]) -> list[str]:
    failures = []
    conns = figures["connections"]
    if conns["opened"] < conns["asked"]:
        failures.append(f"slow clients: only {conns['opened']} of {conns['asked']} connections")
    for path, s in figures["slow"].items():
        if s["requests"] < MIN_SAMPLES:
            failures.append(f"slow clients: {path}: {s['requests']} requests only")
        if s["p99_ms"] is not None and s["p99_ms"] >= SLOW_P99_BOUND * 1000:
            failures.append(f"slow clients: {path}: p99 {s['p99_ms']} ms >= 250 ms")
        if s["non_200"] or s["no_answer"]:
            failures.append(
                f"slow clients: {path}: {s['non_200']} answers not 200, "
                f"{s['no_answer']} without an answer"
            )
    for path, status in figures["after"].items():
        if status != 200:
            failures.append(f"slow clients: {path} after the slow clients: {status}")
    return failures


# -- Frozen store ---------------------------------------------------------------------------


async def until_ok(
    steps: dict[str, Callable[[], Awaitable[Exchange]]], since: float, seconds: float
) -> dict[str, float | None]:
    """Repeat each step until it answers 200; return each one's seconds from ``since``."""
    found: dict[str, float | None] = dict.fromkeys(steps)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for name, step in steps.items():
            if found[name] is None and (await step()).status == 200:
                found[name] = round(time.perf_counter() - since, 3)
        if all(v is not None for v in found.values()):
            break
        await asyncio.sleep(0.05)
    return found


async def freeze_round(
    number: int, args: argparse.Namespace, port: int, user: Session, redis_pid: int
) -> dict[str, Any]:
    anonymous = Session(port)
    steps: dict[str, Callable[[], Awaitable[Exchange]]] = {
        "readyz": lambda: anonymous.call("GET", "/readyz"),
        "me": lambda: user.call("GET", "/api/me"),
    }
    ready = await until_ok(steps, time.perf_counter(), RECOVERY_TIMEOUT)
    if None in ready.values():
        raise StressError(f"round {number}: not answering 200 before the freeze: {ready}")
    prepared = Session(port)
    await prepared.fetch_csrf()
    await asyncio.sleep(QUIET_SECONDS)
    log(f"round {number}: SIGSTOP redis-server")
    os.kill(redis_pid, signal.SIGSTOP)
    frozen = time.perf_counter()
    try:
        credentials = {"username": "stress-frozen", "password": PASSWORD}
        answers = await asyncio.gather(
            user.call("GET", "/api/me", timeout=FROZEN_TIMEOUT),
            anonymous.call("GET", "/readyz", timeout=FROZEN_TIMEOUT),
            prepared.call("POST", "/api/login", credentials, timeout=FROZEN_TIMEOUT),
        )
        await asyncio.sleep(max(0.0, frozen + args.freeze_seconds - time.perf_counter()))
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    thawed = time.perf_counter()
    log(f"round {number}: SIGCONT after {thawed - frozen:.1f} s")
    recovered = await until_ok(steps, thawed, RECOVERY_TIMEOUT)
    login_after = await Session(port).log_in("stress-frozen")
    return {
        "round": number,
        "frozen_s": round(thawed - frozen, 2),
        "answers": {
            route: {"status": got.status, "seconds": round(got.seconds, 3), "error": got.error}
            for route, got in zip(FROZEN_ROUTES, answers, strict=True)
        },
        "recovery_s": {
            "readyz": recovered["readyz"],
            "me": recovered["me"],
            "both": None if None in recovered.values() else max(filter(None, recovered.values())),
        },
        "login_after": login_after.status,
    }


async def frozen_stage(
    args: argparse.Namespace, port: int, proc: subprocess.Popen[bytes], redis_pid: int
) -> Any:
    await wait_answering(port, proc)
    user = await logged_in(port, "stress-frozen")
    rounds = [await freeze_round(n, args, port, user, redis_pid) for n in range(1, args.rounds + 1)]
    routes = {}
    for route in FROZEN_ROUTES:
        answers = [r["answers"][route] for r in rounds]
        times = [a["seconds"] for a in answers]
        routes[route] = {
            "answers": len(answers),
            "all_503": all(a["status"] == 503 for a in answers),
            "statuses": dict(Counter(str(a["status"]) for a in answers)),
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
        }
    return {"rounds": rounds, "routes": routes}


def frozen_failures(figures: dict[str, Any]) -> list[str]:
    failures = []
    for r in figures["rounds"]:
        for route, a in r["answers"].items():
            if a["status"] != 503 or a["seconds"] >= FROZEN_BOUND:
                what = a["status"] or f"no answer ({a['error']})"
                failures.append(
                    f"frozen store, round {r['round']}: {route}: {what} in {a['seconds']} s"
                )
        if r["recovery_s"]["both"] is None:
            failures.append(
                f"frozen store, round {r['round']}: no recovery within {RECOVERY_TIMEOUT:.0f} s "
                f"after SIGCONT: {r['recovery_s']}"
            )
        if r["login_after"] != 200:
            failures.append(
                f"frozen store, round {r['round']}: login after recovery: {r['login_after']}"
            )
    return failures


# -- Running the stages ---------------------------------------------------------------------


def start_server(
    processes: Processes, work: Path, name: str, workers: int, **settings: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start ``coatcheck serve`` on a free port in a process group of its own."""
    folder = work / name
    folder.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATCHECK_")}
    env.update(SECRET_KEY=secrets.token_urlsafe(32), COATCHECK_COOKIE_SECURE="false", **settings)
    cli = Path(sys.executable).parent / "coatcheck"
    argv = [str(cli), "serve", "--port", str(port), "--workers", str(workers)]
    logfile = folder / "serve.log"
    proc = processes.start(
        [*argv, "--instance", str(folder / "instance")], cwd=folder, env=env, logfile=logfile
    )
    log(f"{name}: coatcheck serve --workers {workers} on port {port} (pid {proc.pid})")
    return proc, port, logfile


def tracebacks(logfile: Path) -> int:
    with contextlib.suppress(OSError):
        return logfile.read_text(errors="replace").count("Traceback")
    return 0


def run_slow(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    proc, port, logfile = start_server(processes, work, "slow", args.workers)
    budget = START_TIMEOUT + args.baseline_seconds + args.slow_seconds + 60
    try:
        figures: dict[str, Any] = asyncio.run(
            within(budget, "the slow-client stage", slow_stage(args, port, proc))
        )
    finally:
        processes.stop(proc)
    figures["tracebacks"] = tracebacks(logfile)
    return figures


def run_frozen(args: argparse.Namespace, processes: Processes, work: Path) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StressError("redis-server is not installed (apt-get install redis-server)")
    folder = work / "redis"
    folder.mkdir()
    redis_port = free_port()
    argv = [binary, "--port", str(redis_port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    redis = processes.start(argv, cwd=folder, env=dict(os.environ), logfile=folder / "redis.log")
    log(f"redis-server on port {redis_port} (pid {redis.pid})")
    try:
        asyncio.run(
            within(START_TIMEOUT + 5, "starting redis-server", wait_redis(redis_port, redis))
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        proc, port, logfile = start_server(
            processes, work, "frozen", args.workers, COATCHECK_STORE_URL=url
        )
        budget = START_TIMEOUT + args.rounds * (
            QUIET_SECONDS + args.freeze_seconds + FROZEN_TIMEOUT + 2 * RECOVERY_TIMEOUT + 10
        )
        try:
            figures: dict[str, Any] = asyncio.run(
                within(budget, "the frozen-store stage", frozen_stage(args, port, proc, redis.pid))
            )
        finally:
            processes.stop(proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(redis.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM once continued
        processes.stop(redis)
    version = subprocess.run(  # noqa: S603 - our own argv, no shell
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()
    figures["redis"] = next((w[2:] for w in version if w.startswith("v=")), "?")
    figures["tracebacks"] = tracebacks(logfile)
    return figures


# -- The report -----------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def slow_report(args: argparse.Namespace, f: dict[str, Any]) -> list[str]:
    conns = f["connections"]
    out = [
        "## Slow clients",
        "",
        f"`coatcheck serve --workers {args.workers}` (SQLite). {conns['opened']} of "
        f"{conns['asked']} connections opened, each sending `GET /healthz HTTP/1.1`, "
        f"`Host: x` and then one header byte every {args.tick} s for {args.slow_seconds} s "
        f"({conns['bytes_sent_each']} bytes at most), while one client requests `/healthz` and "
        "an authenticated `/api/me` in turn (one connection per request); baseline: the same "
        f"client alone for {args.baseline_seconds} s before.",
        "",
        "| phase | route | requests | p50 ms | p99 ms | max ms | non-200 | no answer |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    phases = (("alone", f["baseline"]), (f"{conns['opened']} slow clients", f["slow"]))
    for phase, series in phases:
        for path, s in series.items():
            out.append(
                f"| {phase} | `GET {path}` | {s['requests']} | {ms(s['p50_ms'])} "
                f"| {ms(s['p99_ms'])} | {ms(s['max_ms'])} | {s['non_200']} | {s['no_answer']} |"
            )
    closed = conns["closed_by_server"]
    replies = ", ".join(
        f"{n} without an answer" if k == "none" else f"{n} after an answer `{k}`"
        for k, n in conns["server_replies"].items()
    )
    if closed:
        low, high = conns["closed_after_s"]
        closing = (
            f"{closed}, {low}-{high} s after they opened (the server gives a client "
            f"{HEADER_TIMEOUT_MS / 1000:g} s to send its headers), {replies}"
        )
    else:
        closing = "none"
    out += [
        "",
        f"Slow connections the server closed before the end: {closing}. After the slow clients: "
        + ", ".join(f"`{path}` {status}" for path, status in f["after"].items())
        + f". Tracebacks in the server log: {f['tracebacks']}.",
    ]
    if conns["not_opened"]:
        out += ["", f"Not opened: {conns['not_opened']}"]
    return out


def frozen_report(args: argparse.Namespace, f: dict[str, Any]) -> list[str]:
    out = [
        "## Frozen store",
        "",
        f"`coatcheck serve --workers {args.workers}`, sessions in a private Redis "
        f"{f.get('redis', '?')} (`COATCHECK_STORE_TIMEOUT` at its default), stopped with "
        f"SIGSTOP for {args.freeze_seconds} s in each of {args.rounds} rounds, the server idle for "
        f"{QUIET_SECONDS:.2f} s before each (twice the read cache's liveness window). At the "
        "SIGSTOP the three requests go out in parallel; time from sending to the answer. "
        "Recovery: from SIGCONT to the first 200 of `/readyz` and of the same session's "
        "`/api/me` (polled every 50 ms), same server, no restart; then a new login.",
        "",
        "| round | "
        + " | ".join(f"`{r}`" for r in FROZEN_ROUTES)
        + " | `/readyz` 200 after | `/api/me` 200 after | login after |",
        "|---:|---|---|---|---:|---:|---|",
    ]
    for r in f["rounds"]:
        cells = []
        for route in FROZEN_ROUTES:
            a = r["answers"][route]
            got = str(a["status"]) if a["status"] is not None else f"no answer ({a['error']})"
            cells.append(f"{got} in {a['seconds']:.3f} s")
        rec = r["recovery_s"]
        after = [f"{rec[k]:.3f} s" if rec[k] is not None else "never" for k in ("readyz", "me")]
        out.append(f"| {r['round']} | " + " | ".join(cells + after) + f" | {r['login_after']} |")
    out += [
        "",
        "| route | answers | all 503 | median time to answer | max |",
        "|---|---:|---|---:|---:|",
    ]
    for route, s in f["routes"].items():
        all_503 = "yes" if s["all_503"] else f"no: {s['statuses']}"
        out.append(
            f"| `{route}` | {s['answers']} | {all_503} "
            f"| {s['median_s']:.3f} s | {s['max_s']:.3f} s |"
        )
    out += ["", f"Tracebacks in the server log: {f['tracebacks']}."]
    return out


def report(args: argparse.Namespace, figures: dict[str, Any]) -> str:
    machine = figures["machine"]
    out = [
        "# coatcheck under stress (SPEC §11)",
        "",
        f"{machine['date']} · {machine['nproc']} CPUs ({machine['cpu']}) · "
        f"Python {machine['python']} · {machine['platform']} · load average before "
        f"{machine['loadavg_before']}, after {machine['loadavg_after']}",
        "",
    ]
    for stage, write in (("slow_clients", slow_report), ("frozen_store", frozen_report)):
        if stage not in figures:
            continue
        if "error" in figures[stage]:
            title = stage.replace("_", " ").capitalize()
            out += [f"## {title}", "", f"**Not run to the end**: {figures[stage]['error']}", ""]
            continue
        out += [*write(args, figures[stage]), ""]
    out += [
        "## Verdict",
        "",
        "Bounds: among slow clients a p99 under 250 ms and every answer 200; with the store "
        "frozen every answer a 503 within 1 s, and recovery after SIGCONT without a restart; "
        "no traceback in a server's log.",
        "",
    ]
    if figures["failures"]:
        out += ["**FAILED**:", "", *(f"- {failure}" for failure in figures["failures"])]
    else:
        out.append("**Every bound met.**")
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--slow-clients", type=int, default=500)
    parser.add_argument("--slow-seconds", type=float, default=8.0)
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between header bytes")
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="times the store is frozen")
    parser.add_argument("--freeze-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("slow", "frozen"), help="run one stage only")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the instance folders and logs")
    args = parser.parse_args(argv)
    if not (
        1 <= args.slow_clients <= 10_000
        and 1 <= args.slow_seconds <= 600
        and 0.05 <= args.tick <= 10
        and 0 <= args.baseline_seconds <= 600
        and 1 <= args.rounds <= 100
        and 0 <= args.freeze_seconds <= 60
        and 1 <= args.workers <= 64
    ):
        parser.error(
            "--slow-clients 1..10000, --slow-seconds 1..600, --tick 0.05..10, "
            "--baseline-seconds 0..600, --rounds 1..100, --freeze-seconds 0..60, --workers 1..64"
        )
    return args


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    raise_open_files_limit(args.slow_clients + 256)
    work = Path(tempfile.mkdtemp(prefix="coatcheck-stress-"))
    loadavg = [round(x, 2) for x in os.getloadavg()]
    processes = Processes()
    figures: dict[str, Any] = {}
    failures: list[str] = []
    stages = (
        ("slow_clients", "slow", run_slow, slow_failures),
        ("frozen_store", "frozen", run_frozen, frozen_failures),
    )
    try:
        for key, name, run, judge in stages:
            if args.only not in (None, name):
                continue
            log(f"stage: {key.replace('_', ' ')}")
            try:
                figures[key] = run(args, processes, work)
            except Exception as exc:  # reported, and the next stage still runs
                why = str(exc) if isinstance(exc, StressError) else repr(exc)
                figures[key] = {"error": why}
                failures.append(f"{key.replace('_', ' ')}: {why}")
                continue
            failures += judge(figures[key])
            if figures[key]["tracebacks"]:
                failures.append(f"{key.replace('_', ' ')}: tracebacks in the server log")
    finally:
        for proc in list(processes.live):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
        processes.stop_all()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures["failures"] = failures
    figures["machine"] = machine(loadavg)
    figures["setup"] = {k: str(v) for k, v in vars(args).items()}
    print(report(args, figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
