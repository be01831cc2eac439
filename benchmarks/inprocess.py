"""Authenticated ``GET /api/me`` through the Flask test client, apps taking turns.

coatcheck's ``GET /api/authz/auth-request`` (:mod:`.forwardauth`), on the same
app and session, takes its turn in every round too.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import forwardauth
from .apps import specs
from .clients import InProcess, headers, log_in
from .common import APPS, BenchError, check_stall, log, median, paired_ratio


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # per app per round
    max_ops: int  # per app per round
    warmup: float


#: One entrant of the rounds: a client, the path it asks for, the headers it sends.
Entrant = tuple[InProcess, str, dict[str, str]]


def _loop(entrant: Entrant, seconds: float, max_ops: int) -> tuple[int, float, int]:
    """Run ``GET path`` until the time or the count runs out: (requests, seconds, non-200)."""
    client, path, hdrs = entrant
    n = bad = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < max_ops:
        if client("GET", path, hdrs).status != 200:
            bad += 1
        n += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    check_stall(elapsed, seconds, f"{n} GET {path}")
    return n, elapsed, bad


def _entrants(store: str, base: Path, secret: str, result: dict[str, Any]) -> dict[str, Entrant]:
    """Build and log in to each app; add coatcheck's auth-request if it lets the user through."""
    entrants: dict[str, Entrant] = {}
    for spec in specs(store, base, secret, APPS):
        try:
            client = InProcess(spec.build())
            cookie = log_in(client, f"{spec.name}/{store}")
        except Exception as exc:  # one broken app must not hide the others' figures
            result["apps"][spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"in-process/{store}: {spec.name} unavailable: {exc}")
            continue
        entrants[spec.name] = (client, "/api/me", headers(cookie))
        if spec.name == "coatcheck":
            try:
                forwardauth.check(client, cookie, f"coatcheck/{store}")
            except BenchError as exc:
                result[forwardauth.NAME] = {"error": str(exc)}
                log(f"in-process/{store}: {exc}")
                continue
            request_headers = forwardauth.request_headers(cookie)
            entrants[forwardauth.NAME] = (client, forwardauth.PATH, request_headers)
    return entrants


def measure(store: str, base: Path, secret: str, plan: Plan) -> dict[str, Any]:
    """Return ops/s per round for each app and the paired ratios."""
    result: dict[str, Any] = {"apps": {}}
    entrants = _entrants(store, base, secret, result)
    names = list(entrants)
    ops: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    for r in range(-1, plan.rounds):  # round -1 warms up and is not recorded
        gc.collect()
        for name in names[r % len(names) :] + names[: r % len(names)] if names else []:
            try:
                n, seconds, bad = _loop(
                    entrants[name], plan.warmup if r < 0 else plan.seconds, plan.max_ops
                )
            except BenchError as exc:  # a stalled app leaves the rotation, the others go on
                home = result if name == forwardauth.NAME else result["apps"]
                home[name] = {"error": str(exc)}
                log(f"in-process/{store}: {name} dropped: {exc}")
                names.remove(name)
                continue
            if r >= 0:
                ops[name].append(n / seconds)
                errors[name] += bad
        if r >= 0:
            done = ", ".join(f"{k} {ops[k][-1]:,.0f}/s" for k in names)
            log(f"in-process/{store} round {r + 1}/{plan.rounds}: {done}")
    apps = [name for name in names if name != forwardauth.NAME]
    for name in apps:
        result["apps"][name] = {
            "per_round": ops[name],
            "median": median(ops[name]),
            "non_200": errors[name],
        }
    result["ratios"] = ratios({name: ops[name] for name in apps})
    if forwardauth.NAME in names:
        result[forwardauth.NAME] = authz_figures(
            ops.get("coatcheck", []), ops[forwardauth.NAME], errors[forwardauth.NAME]
        )
    return result


def authz_figures(me: list[float], authz: list[float], non_2xx: int) -> dict[str, Any]:
    """Return auth-request's figures beside coatcheck's ``GET /api/me``, round for round."""
    paired = len(me) == len(authz) and bool(me)
    ratio = paired_ratio(authz, me) if paired else None
    return {**forwardauth.summary(me, authz, ratio), "non_2xx": non_2xx}


def ratios(series: dict[str, list[float]]) -> dict[str, float | None]:
    """Return coatcheck/bare and coatcheck/anchor: medians of per-round ratios."""
    cc = series.get("coatcheck")
    return {
        f"coatcheck/{other}": paired_ratio(cc, series[other]) if cc and series.get(other) else None
        for other in ("bare", "anchor")
    }
