"""SPEC §11: clients that trickle their headers delay no one else.

Hundreds of connections each send a header byte every half second while one
client measures ``/healthz`` and an authenticated ``/api/me``: the 99th
percentile stays under the SPEC's 250 ms (a bound, not a figure: those are in
docs/robustness.md), and nothing fails.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..conftest import TEST_SECRET_KEY
from ..faults.traffic import HttpClient, register
from .served import serve

SLOW_CLIENTS = 500
TRICKLE_SECONDS = 3.0
TICK = 0.5
BOUND = 0.25


@contextmanager
def open_files(wanted: int) -> Iterator[None]:
    """Raise this process's soft limit of open files to ``wanted`` if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = min(hard, wanted) if hard != resource.RLIM_INFINITY else wanted
    if soft != resource.RLIM_INFINITY and soft < raised:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def test_slow_header_clients_delay_no_one(tmp_path: Path) -> None:
    with (
        open_files(SLOW_CLIENTS + 256),
        serve(tmp_path / "instance", "--workers", "2", SECRET_KEY=TEST_SECRET_KEY) as served,
    ):
        port = served.port
        me = register(port, "alice-slow")
        anonymous = HttpClient(port, timeout=5)
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_CLIENTS)]
        try:
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
            timings: dict[str, list[float]] = {"/healthz": [], "/api/me": []}
            failures = []
            next_tick = time.monotonic()
            end = next_tick + TRICKLE_SECONDS
            while time.monotonic() < end:
                if time.monotonic() >= next_tick:
                    for sock in slow:
                        # A header line that never ends; the server may hang up first.
                        with contextlib.suppress(OSError):
                            sock.send(b"X")
                    next_tick += TICK
                for client, path in ((anonymous, "/healthz"), (me, "/api/me")):
                    started = time.monotonic()
                    reply = client.request("GET", path)
                    timings[path].append(time.monotonic() - started)
                    if reply.status != 200:
                        failures.append((path, reply.status))
        finally:
            for sock in slow:
                sock.close()
        assert failures == []
        for path, taken in timings.items():
            assert len(taken) > 20, path
            assert percentile(taken, 0.99) < BOUND, (path, sorted(taken)[-5:])
        assert me.request("GET", "/api/me").status == 200
        assert HttpClient(port).request("GET", "/healthz").status == 200
