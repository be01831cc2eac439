"""The HTTP server behind ``coatcheck serve``: granian, running the app in each worker.

Why granian (figures in ``docs/robustness.md``): its HTTP layer is Rust on an
event loop, so a client that trickles its headers holds a few bytes of
memory, not a worker or a thread. Python sees a request only when it is
whole; ``threads`` Python threads per worker run the app. gunicorn's sync and
gthread workers each wait on one slow client; gevent's greenlets would turn
the stores' per-thread state into per-connection state.

What gunicorn gave and this keeps: ``--workers`` processes, a worker that dies
is replaced, ``SIGHUP`` replaces every worker gracefully (one at a time, the
new one started before the old one stops), ``SIGTERM``/``SIGINT`` stop after
the requests in flight (at most :data:`GRACEFUL_SECONDS`).

What it does not: granian stops the whole server when a worker dies again
within 5.5 s of being replaced (a crash loop; run it under a supervisor), and
has no per-request timeout (the store and database timeouts bound every wait
coatcheck makes). On Linux, connections still queued on a worker that stops
move to another only with ``sysctl net.ipv4.tcp_migrate_req=1``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import resource
from collections.abc import Callable
from typing import Any

#: Connections one worker holds at once, slow ones included (granian's
#: "backpressure"): past this, new connections wait in the listen backlog.
CONNECTIONS_PER_WORKER = 4096
#: The listen backlog: connections the kernel queues before a worker accepts them.
BACKLOG = 2048
#: Milliseconds a client may take to send a request's headers.
HEADER_TIMEOUT_MS = 10_000
#: Seconds a worker is given to finish its requests before it is killed.
GRACEFUL_SECONDS = 30


def raise_open_files_limit(wanted: int) -> None:
    """Raise this process's soft limit of open files towards ``wanted`` (never above the hard one).

    Every connection is a file descriptor; the usual soft limit (1024) would
    cap the slow clients a worker can hold. Workers inherit the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        # macOS refuses more than its kernel's maximum even under an unlimited hard limit.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(
    factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    on_ready: Callable[[], None],
) -> None:
    """Serve the WSGI app ``factory`` returns (called once in each worker) until stopped."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    raise_open_files_limit(workers * CONNECTIONS_PER_WORKER + 256)
    server = Server(
        "coatcheck",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        backpressure=CONNECTIONS_PER_WORKER,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS),
        log_access=True,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    server.on_startup(on_ready)  # called once the socket is bound, before the workers start
    server.serve(target_loader=functools.partial(_load, factory))


def _load(factory: Callable[[], Any], target: str) -> Any:
    """Build the app in a worker (granian passes its ``target`` name, unused here)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    return factory()
