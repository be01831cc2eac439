"""Authenticated ``GET /api/me`` through the Flask test client, apps taking turns."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .apps import specs
from .clients import InProcess, headers, log_in
from .common import APPS, BenchError, check_stall, log, median, paired_ratio


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # per app per round
    max_ops: int  # per app per round
    warmup: float


def _loop(
    client: InProcess, hdrs: dict[str, str], seconds: float, max_ops: int
) -> tuple[int, float, int]:
    """Run ``GET /api/me`` until the time or the count runs out: (requests, seconds, non-200)."""
    n = bad = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < max_ops:
        if client("GET", "/api/me", hdrs).status != 200:
            bad += 1
        n += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    check_stall(elapsed, seconds, f"{n} GET /api/me")
    return n, elapsed, bad


def measure(store: str, base: Path, secret: str, plan: Plan) -> dict[str, Any]:
    """Return ops/s per round for each app and the paired ratios."""
    clients: dict[str, tuple[InProcess, dict[str, str]]] = {}
    result: dict[str, Any] = {"apps": {}}
    for spec in specs(store, base, secret, APPS):
        try:
            client = InProcess(spec.build())
            clients[spec.name] = (client, headers(log_in(client, f"{spec.name}/{store}")))
        except Exception as exc:  # one broken app must not hide the others' figures
            result["apps"][spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"in-process/{store}: {spec.name} unavailable: {exc}")
    names = list(clients)
    ops: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    for r in range(-1, plan.rounds):  # round -1 warms up and is not recorded
        gc.collect()
        for name in names[r % len(names) :] + names[: r % len(names)] if names else []:
            try:
                n, seconds, bad = _loop(
                    *clients[name], plan.warmup if r < 0 else plan.seconds, plan.max_ops
                )
            except BenchError as exc:  # a stalled app leaves the rotation, the others go on
                result["apps"][name] = {"error": str(exc)}
                log(f"in-process/{store}: {name} dropped: {exc}")
                names.remove(name)
                continue
            if r >= 0:
                ops[name].append(n / seconds)
                errors[name] += bad
        if r >= 0:
            done = ", ".join(f"{k} {ops[k][-1]:,.0f}/s" for k in names)
            log(f"in-process/{store} round {r + 1}/{plan.rounds}: {done}")
    for name in names:
        result["apps"][name] = {
            "per_round": ops[name],
            "median": median(ops[name]),
            "non_200": errors[name],
        }
    result["ratios"] = ratios({name: ops[name] for name in names})
    return result


def ratios(series: dict[str, list[float]]) -> dict[str, float | None]:
    """Return coatcheck/bare and coatcheck/anchor: medians of per-round ratios."""
    cc = series.get("coatcheck")
    return {
        f"coatcheck/{other}": paired_ratio(cc, series[other]) if cc and series.get(other) else None
        for other in ("bare", "anchor")
    }
