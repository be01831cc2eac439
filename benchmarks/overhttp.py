"""Authenticated ``GET /api/me`` over HTTP, driven by wrk.

coatcheck's ``GET /api/authz/auth-request`` (:mod:`.forwardauth`), on the same
server and session, takes its turn in every round too: one more wrk run per
round, no other server.

Every app runs under the same server: granian (what ``coatcheck serve`` runs;
1 worker, 1 Python thread, as gunicorn's sync worker has), or gunicorn (1 sync
worker, what the independent harness in shared/bench uses) with ``--server
gunicorn``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import forwardauth
from .apps import AppSpec, specs
from .clients import USER_AGENT, OverHttp, headers, log_in
from .common import (
    APPS,
    ROOT,
    BenchError,
    Processes,
    free_port,
    log,
    median,
    paired_ratio,
    short,
)
from .inprocess import ratios

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int  # per wrk run
    connections: int
    warmup: int  # seconds of wrk per app before the rounds, 0 for none
    server: str = "granian"  # one of SERVERS


SERVERS = ("granian", "gunicorn")


def server_argv(server: str, spec: AppSpec, port: int) -> list[str]:
    """Return the command serving ``spec`` on 127.0.0.1:port with one worker of ``server``."""
    if server == "granian":
        options = (
            f"--interface wsgi --factory --workers 1 --blocking-threads 1 --host 127.0.0.1 "
            f"--port {port} --http 1 --no-ws --backlog 2048 --log-level warning --no-access-log"
        )
        # "benchmarks.bare_app:create_app()" in gunicorn's notation
        target = spec.wsgi_target().removesuffix("()")
        return [sys.executable, "-m", "granian", *options.split(), target]
    options = (
        f"--bind 127.0.0.1:{port} --workers 1 --worker-class sync --backlog 2048 --timeout 60 "
        "--graceful-timeout 3 --log-level warning"
    )
    return [
        sys.executable,
        "-m",
        "gunicorn",
        *options.split(),
        "--pythonpath",
        str(ROOT),
        spec.wsgi_target(),
    ]


def wait_ready(
    port: int, proc: subprocess.Popen[bytes], logfile: Path, seconds: float = 60
) -> None:
    """Return once the server answers; raise :class:`BenchError` if it dies or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"server exited with {proc.returncode}: {short(logfile.read_bytes()[-400:])}"
            )
        try:
            OverHttp(port)("GET", "/api/csrf", headers())
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"no answer on 127.0.0.1:{port} within {seconds:.0f} s")


@dataclass(frozen=True)
class Target:
    """What one entrant of the rounds loads: a server, a path, the headers to send."""

    port: int
    cookie: str
    path: str = "/api/me"
    extra: tuple[tuple[str, str], ...] = ()


def run_wrk(target: Target, seconds: int, connections: int) -> dict[str, Any]:
    """Run wrk once on ``GET target.path``; return its figures and the 2xx rate."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        "-H",
        f"User-Agent: {USER_AGENT}",
        "-H",
        f"Cookie: {target.cookie}",
        *(arg for name, value in target.extra for arg in ("-H", f"{name}: {value}")),
        f"http://127.0.0.1:{target.port}{target.path}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)  # noqa: S603
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode or line is None:
        raise BenchError(f"wrk failed: {short(done.stderr or done.stdout)}")
    figures: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    elapsed = figures["duration_us"] / 1e6
    figures["ok_rps"] = (figures["requests"] - figures["non_2xx"]) / elapsed
    return figures


def measure(store: str, base: Path, secret: str, plan: Plan, procs: Processes) -> dict[str, Any]:
    """Serve the three apps side by side and load them in turn, round after round."""
    result: dict[str, Any] = {"apps": {}}
    servers: dict[str, Target] = {}  # one per app, and coatcheck's auth-request
    started: list[subprocess.Popen[bytes]] = []
    try:
        for spec in specs(store, base, secret, APPS):
            try:
                servers[spec.name] = _serve(spec, plan, procs, started)
            except Exception as exc:  # one broken app must not hide the others' figures
                result["apps"][spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"http/{store}: {spec.name} unavailable: {exc}")
                continue
            if spec.name == "coatcheck":
                _add_auth_request(servers, store, result)
        runs = _rounds(store, servers, plan)
        for name, target in servers.items():
            home = result if name == forwardauth.NAME else result["apps"]
            home[name] = {**_summary(runs[name]), "after_load": _check(target)}
    finally:
        for proc in started:
            procs.stop(proc)
    apps = [name for name in servers if name != forwardauth.NAME]
    result["ratios"] = ratios({name: result["apps"][name]["per_round"] for name in apps})
    if forwardauth.NAME in servers and "coatcheck" in servers:
        me, authz = result["apps"]["coatcheck"], result[forwardauth.NAME]
        summary = forwardauth.summary(
            me["per_round"], authz["per_round"], paired_ratio(authz["per_round"], me["per_round"])
        )
        result[forwardauth.NAME] = {**authz, **summary}
    return result


def _add_auth_request(servers: dict[str, Target], store: str, result: dict[str, Any]) -> None:
    """Add coatcheck's auth-request to the rounds, if it lets the bench user through."""
    me = servers["coatcheck"]
    try:
        forwardauth.check(OverHttp(me.port), me.cookie, f"coatcheck/{store}/http")
    except (BenchError, OSError) as exc:
        result[forwardauth.NAME] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"http/{store}: {exc}")
        return
    extra = tuple(forwardauth.ORIGINAL.items())
    servers[forwardauth.NAME] = Target(me.port, me.cookie, forwardauth.PATH, extra)


def _serve(
    spec: AppSpec, plan: Plan, procs: Processes, started: list[subprocess.Popen[bytes]]
) -> Target:
    """Start ``spec`` under ``plan.server`` and log in; return its ``GET /api/me`` target."""
    spec.prepare()
    port, logfile = free_port(), spec.folder / "server.log"
    env = {**os.environ, **spec.config(), "PYTHONDONTWRITEBYTECODE": "1"}
    # granian imports the target from the working folder and PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    argv = server_argv(plan.server, spec, port)
    proc = procs.start(argv, cwd=spec.folder, env=env, logfile=logfile)
    started.append(proc)
    wait_ready(port, proc, logfile)
    return Target(port, log_in(OverHttp(port), f"{spec.name}/{spec.store}/http"))


def _rounds(store: str, servers: dict[str, Target], plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Load each target in turn (A B C, B C A, ...); return every wrk run of each."""
    names = list(servers)
    for name in names if plan.warmup else []:
        run_wrk(servers[name], plan.warmup, plan.connections)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(plan.rounds if names else 0):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name].append(run_wrk(servers[name], plan.seconds, plan.connections))
        done = ", ".join(f"{k} {v[-1]['ok_rps']:,.0f}/s" for k, v in runs.items())
        log(f"http/{store} round {r + 1}/{plan.rounds}: {done}")
    return runs


def _check(target: Target) -> int | str:
    """Return the status of the target's request after the load (still logged in?)."""
    try:
        hdrs = headers(target.cookie, **dict(target.extra))
        return OverHttp(target.port)("GET", target.path, hdrs).status
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [run["ok_rps"] for run in runs]
    return {
        "per_round": rps,
        "median": median(rps),
        "p50_ms": median([run["p50_us"] / 1000 for run in runs]),
        "p99_ms": median([run["p99_us"] / 1000 for run in runs]),
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
    }
