"""Shared pieces: logging, statistics, free ports, the processes the run starts."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: The repository root (the folder holding ``benchmarks/``).
ROOT = Path(__file__).resolve().parent.parent
APPS = ("coatcheck", "bare", "anchor")
STORES = ("redis", "sqlite")
PACKAGES = (
    "coatcheck",
    "flask",
    "werkzeug",
    "flask-login",
    "flask-session",
    "flask-wtf",
    "flask-sqlalchemy",
    "sqlalchemy",
    "redis",
    "bcrypt",
    "gunicorn",
)


class BenchError(Exception):
    """A step failed; the message is shown in the report."""


def log(message: str) -> None:
    """Print a progress line to stderr (stdout carries only the report)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    """Return the median, or ``None`` for no values."""
    return statistics.median(values) if values else None


def paired_ratio(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Return the median of the per-round ratios ``x / y`` (drift cancels in a round)."""
    return median([x / y for x, y in zip(xs, ys, strict=True) if y])


#: A timed loop that overruns its time budget this much has met a stalled store.
STALL_FACTOR, STALL_SLACK = 10.0, 5.0


def check_stall(elapsed: float, budget: float, what: str) -> None:
    """Raise :class:`BenchError` when a loop overran its budget far beyond one slow call."""
    if elapsed > budget * STALL_FACTOR + STALL_SLACK:
        raise BenchError(f"{what} stalled: {elapsed:.1f} s for a {budget:.2f} s budget")


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def short(text: str | bytes, limit: int = 200) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Processes:
    """The processes this run started, each in a process group of its own."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], logfile: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``logfile``."""
        with logfile.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """Stop one process (and its workers) by its process group id."""
        if proc in self.live:
            self.live.remove(proc)
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        """Stop every process still running."""
        for proc in list(self.live):
            self.stop(proc)


def cpu_model() -> str:
    """Return the CPU model named in /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def host() -> dict[str, object]:
    """Return the date, the CPUs, Python and the platform, for a report."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine() -> dict[str, object]:
    """Return what the report says about this machine and its software."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        **host(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }
