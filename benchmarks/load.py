"""A bounded load test: ``coatcheck serve --workers 2`` under 200 concurrent clients.

Run it with ``make load`` (never part of ``make test``), or::

    python -m benchmarks.load [--clients 200] [--seconds 60] [--workers 2] [--json PATH]

It starts ``coatcheck serve`` on 127.0.0.1 with a fresh instance folder
(SQLite sessions and users, or ``--store-url redis://...``), registers
``--users`` accounts, then runs ``--clients`` virtual clients for
``--seconds`` (and at most ``--max-requests`` requests), each in a loop of
mixed traffic, as a browser-less API client would: log in (CSRF token, login,
new CSRF token), ``GET /api/me``, ``GET /api/sessions``, ``DELETE
/api/sessions/<handle>`` of another of its user's sessions, log out. A client
whose session another client revoked gets 401 or 403 and logs in again.

The clients are asyncio tasks on raw sockets, one connection per request
(``Connection: close``, as when the server was gunicorn's sync workers, so that
figures stay comparable). Every 5 s the workers' resident memory
(``VmRSS``) is read from ``/proc``. The report, markdown on stdout: requests,
statuses, transport errors, latency percentiles per route, each worker's
memory and its growth from the first 10 s to the end, tracebacks in the
server's log. The exit status is 1 when any answer was a 5xx, a request got
no answer, or the server logged a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Processes, free_port, host, log

USER_PREFIX = "load-user-"
REQUEST_TIMEOUT = 30.0
RSS_INTERVAL = 5.0
#: Weights of what a logged-in client does next.
ACTIONS = {"me": 60, "sessions": 22, "revoke_other": 10, "logout": 8}


@dataclass
class Answer:
    status: int
    cookies: dict[str, str | None]  # name -> value, None: deleted
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ProtocolError(Exception):
    """The server's answer was not HTTP as expected."""


async def http(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> Answer:
    """Send one request on a new connection; return the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        cookies: dict[str, str | None] = {}
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "set-cookie":
                pair, _, attributes = value.partition(";")
                key, _, val = pair.strip().partition("=")
                cookies[key] = None if "max-age=0" in attributes.lower() else val
        data = await (reader.readexactly(length) if length is not None else reader.read())
        return Answer(int(parts[1]), cookies, data)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Tally:
    """Everything counted during the run."""

    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)


class Client:
    """One virtual API client with its cookie jar, logged in as one user."""

    def __init__(self, run: Run, username: str, rng: random.Random) -> None:
        self.run = run
        self.username = username
        self.rng = rng
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self.logged_in = False
        self.others: list[str] = []  # handles of the user's other sessions, last seen

    async def call(self, route: str, method: str, path: str, payload: Any = None) -> Answer | None:
        headers = {"Origin": self.run.origin, "User-Agent": "coatcheck-load/1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        body = None if payload is None else json.dumps(payload).encode()
        tally = self.run.tally
        tally.requests += 1
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(
                http(self.run.port, method, path, headers, body), REQUEST_TIMEOUT
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            tally.failures[route, type(exc).__name__] += 1
            return None
        tally.latencies[route].append(time.perf_counter() - started)
        tally.statuses[route, answer.status] += 1
        for name, value in answer.cookies.items():
            if value is None:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        if answer.status in (401, 403):  # revoked by another client of this user
            self.logged_in = False
        return answer

    async def fetch_csrf(self) -> bool:
        answer = await self.call("csrf", "GET", "/api/csrf")
        if answer is None or answer.status != 200:
            return False
        self.csrf = answer.json()["csrf_token"]
        return True

    async def log_in(self) -> None:
        self.cookies.clear()
        self.csrf = None
        if not await self.fetch_csrf():
            return
        body = {"username": self.username, "password": self.run.password}
        answer = await self.call("login", "POST", "/api/login", body)
        if answer is not None and answer.status == 200:
            self.logged_in = await self.fetch_csrf()

    async def act(self) -> None:
        if not self.logged_in:
            await self.log_in()
            return
        action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        if action == "revoke_other" and not self.others:
            action = "sessions"  # learn the other handles first
        if action == "me":
            await self.call("me", "GET", "/api/me")
        elif action == "sessions":
            answer = await self.call("sessions", "GET", "/api/sessions")
            if answer is not None and answer.status == 200:
                listed = answer.json()["sessions"]
                self.others = [s["handle"] for s in listed if not s["current"]]
        elif action == "revoke_other":
            handle = self.others.pop(self.rng.randrange(len(self.others)))
            await self.call("revoke_other", "DELETE", f"/api/sessions/{handle}")
        else:
            answer = await self.call("logout", "POST", "/api/logout")
            if answer is not None and answer.status == 204:
                self.logged_in = False

    async def loop(self) -> None:
        while self.run.going():
            await self.act()


@dataclass
class Run:
    port: int
    password: str
    deadline: float
    max_requests: int
    tally: Tally = field(default_factory=Tally)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def going(self) -> bool:
        return time.monotonic() < self.deadline and self.tally.requests < self.max_requests


def worker_pids(master: int) -> list[int]:
    """Return the pids of the children of ``master``: the server's workers."""
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return sorted(pids)


def rss_kib(pid: int) -> int | None:
    """Return the resident memory of ``pid`` in KiB, from /proc/<pid>/status."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


async def sample_rss(
    master: int, started: float, samples: list[tuple[float, int, int]], stop: asyncio.Event
) -> None:
    """Record (seconds, pid, KiB) for every worker every RSS_INTERVAL seconds, and at the end."""
    while True:
        now = time.monotonic() - started
        for pid in worker_pids(master):
            kib = rss_kib(pid)
            if kib is not None:
                samples.append((now, pid, kib))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RSS_INTERVAL)


async def wait_ready(port: int, proc_alive: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc_alive():
            raise SystemExit("coatcheck serve exited before answering; see its log")
        with contextlib.suppress(OSError, ProtocolError, asyncio.IncompleteReadError):
            if (await http(port, "GET", "/healthz", {})).status == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("coatcheck serve did not answer in time")


async def register(run: Run, username: str) -> None:
    client = Client(run, username, random.Random(0))  # noqa: S311 - traffic, not secrets
    if not await client.fetch_csrf():
        raise SystemExit("could not fetch a CSRF token to register the users")
    body = {"username": username, "password": run.password}
    answer = await client.call("register", "POST", "/api/register", body)
    if answer is None or answer.status != 201:
        raise SystemExit(f"could not register {username}: {answer}")


async def drive(
    args: argparse.Namespace, port: int, master: int, alive: Callable[[], bool]
) -> dict[str, Any]:
    await wait_ready(port, alive)
    run = Run(port, f"load-{secrets.token_hex(8)}-test", math.inf, args.max_requests)
    users = [f"{USER_PREFIX}{n}" for n in range(args.users)]
    for start in range(0, len(users), 10):  # a few at a time: registering hashes a password
        await asyncio.gather(*(register(run, name) for name in users[start : start + 10]))
    run.tally = Tally()
    run.deadline = time.monotonic() + args.seconds
    rng = random.Random(args.seed)  # noqa: S311 - traffic, not secrets
    clients = [
        Client(run, users[n % len(users)], random.Random(rng.random()))  # noqa: S311
        for n in range(args.clients)
    ]
    samples: list[tuple[float, int, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(master, run.tally.started, samples, stop))
    log(f"{args.clients} clients for {args.seconds} s on port {port}")
    await asyncio.gather(*(client.loop() for client in clients))
    elapsed = time.monotonic() - run.tally.started
    stop.set()
    await sampler
    return summarize(run.tally, elapsed, samples)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summarize(
    tally: Tally, elapsed: float, samples: list[tuple[float, int, int]]
) -> dict[str, Any]:
    routes = {}
    for route, values in sorted(tally.latencies.items()):
        routes[route] = {
            "requests": len(values),
            **{f"p{p}_ms": round(percentile(values, p) * 1000, 1) for p in (50, 90, 99)},
            "max_ms": round(max(values) * 1000, 1),
            "statuses": {str(s): n for (r, s), n in sorted(tally.statuses.items()) if r == route},
        }
    every = [v for values in tally.latencies.values() for v in values]
    statuses: Counter[int] = Counter()
    for (_, status), n in tally.statuses.items():
        statuses[status] += n
    workers: dict[int, dict[str, Any]] = {}
    for when, pid, kib in samples:
        workers.setdefault(pid, {"samples": []})["samples"].append((round(when, 1), kib))
    for info in workers.values():
        series = info["samples"]
        early = [kib for when, kib in series if when <= 10.0] or [series[0][1]]
        info["first_10s_kib"] = max(early)
        info["end_kib"] = series[-1][1]
        info["growth_kib"] = info["end_kib"] - info["first_10s_kib"]
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": len(every),
        "per_second": round(len(every) / elapsed, 1) if elapsed else 0.0,
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "server_errors": sum(n for s, n in statuses.items() if s >= 500),
        "no_answer": {f"{r} {e}": n for (r, e), n in sorted(tally.failures.items())},
        "latency_ms": {
            f"p{p}": round(percentile(every, p) * 1000, 1) if every else None for p in (50, 90, 99)
        },
        "routes": routes,
        "workers": {str(pid): info for pid, info in workers.items()},
    }


def report(args: argparse.Namespace, figures: dict[str, Any], tracebacks: int) -> str:
    machine = figures["machine"]
    out = [
        "# coatcheck load test",
        "",
        f"{machine['date']} · {machine['nproc']} CPUs ({machine['cpu']}) · "
        f"Python {machine['python']} · {machine['platform']} · load average before "
        f"{machine['loadavg_before']}, after {machine['loadavg_after']}",
        "",
        f"`coatcheck serve --workers {args.workers}` ({args.store_url or 'SQLite'}), "
        f"{args.clients} clients, {args.seconds} s, {args.users} users.",
        "",
        f"**{figures['requests']} requests** in {figures['elapsed_s']} s "
        f"({figures['per_second']}/s); 5xx: **{figures['server_errors']}**; "
        f"no answer: **{sum(figures['no_answer'].values())}**; "
        f"tracebacks in the server log: **{tracebacks}**.",
        "",
        "Latency over all requests (ms): "
        + ", ".join(f"{k} {v}" for k, v in figures["latency_ms"].items()),
        "",
        "| route | requests | p50 ms | p90 ms | p99 ms | max ms | statuses |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for route, r in figures["routes"].items():
        statuses = ", ".join(f"{s}: {n}" for s, n in r["statuses"].items())
        out.append(
            f"| {route} | {r['requests']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} "
            f"| {r['max_ms']} | {statuses} |"
        )
    if figures["no_answer"]:
        out += ["", "No answer: " + ", ".join(f"{k}: {v}" for k, v in figures["no_answer"].items())]
    out += [
        "",
        "| worker | RSS, first 10 s (MiB) | RSS at the end (MiB) | growth (MiB) | samples (MiB) |",
        "|---|---:|---:|---:|---|",
    ]
    for pid, w in figures["workers"].items():
        series = " ".join(f"{kib / 1024:.1f}" for _, kib in w["samples"])
        out.append(
            f"| {pid} | {w['first_10s_kib'] / 1024:.1f} | {w['end_kib'] / 1024:.1f} "
            f"| {w['growth_kib'] / 1024:+.1f} | {series} |"
        )
    return "\n".join(out) + "\n"


def machine(loadavg_before: list[float]) -> dict[str, Any]:
    """Return the machine's figures for a report: date, CPUs, Python, load before and after."""
    return {
        **host(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store-url", default="", help="COATCHECK_STORE_URL (default: SQLite)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the instance folder and log")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 5000 and 1 <= args.seconds <= 3600 and args.users >= 1):
        parser.error("--clients 1..5000, --seconds 1..3600, --users >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="coatcheck-load-"))
    logfile = work / "serve.log"
    port = free_port()
    cli = Path(sys.executable).parent / "coatcheck"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATCHECK_")}
    env["SECRET_KEY"] = secrets.token_urlsafe(32)
    # Every client registers from 127.0.0.1: more than the default 10 an hour.
    env["COATCHECK_THROTTLE_REGISTER"] = "1000/hour"
    if args.store_url:
        env["COATCHECK_STORE_URL"] = args.store_url
    argv_serve = [str(cli), "serve", "--port", str(port), "--workers", str(args.workers)]
    loadavg = [round(x, 2) for x in os.getloadavg()]  # others' work shares the machine
    processes = Processes()
    proc = processes.start(
        [*argv_serve, "--instance", str(work / "instance")], cwd=work, env=env, logfile=logfile
    )
    try:
        figures = asyncio.run(drive(args, port, proc.pid, lambda: proc.poll() is None))
    finally:
        processes.stop_all()
    tracebacks = logfile.read_text(errors="replace").count("Traceback")
    figures["machine"] = machine(loadavg)
    figures["tracebacks"] = tracebacks
    figures["setup"] = {k: str(v) for k, v in vars(args).items()}
    print(report(args, figures, tracebacks))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    failed = figures["server_errors"] or figures["no_answer"] or tracebacks
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
