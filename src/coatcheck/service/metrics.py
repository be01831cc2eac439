"""Prometheus metrics at ``/metrics`` (``coatcheck serve --metrics``).

Counters follow the library's security events; request latency is timed
around every request. With several gunicorn workers each worker counts for
itself unless ``PROMETHEUS_MULTIPROC_DIR`` is set (``coatcheck serve`` sets it).
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..ext import CoatCheck
from ..ext.signals import security_event

_EVENTS = {
    "login_succeeded": "logins",
    "login_failed": "login_failures",
    "login_throttled": "logins_throttled",
    "session_revoked": "revocations",
    "all_sessions_revoked": "revocations",
    "remember_token_theft": "theft_detections",
    "refresh_token_reuse": "theft_detections",
}


class Metrics:
    """The service's metric families, in one registry per application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counters = {
            name: Counter(
                f"coatcheck_{name}", f"coatcheck {name.replace('_', ' ')}", registry=self.registry
            )
            for name in sorted(set(_EVENTS.values()))
        }
        self.latency = Histogram(
            "coatcheck_request_seconds",
            "Request latency",
            ["method", "status"],
            registry=self.registry,
        )
        self.active = Gauge(
            "coatcheck_active_sessions",
            "Live sessions in the store (sampled when scraped)",
            registry=self.registry,
            multiprocess_mode="max",
        )

    def on_event(self, sender: Any, event: str, **_: Any) -> None:
        name = _EVENTS.get(event)
        if name is not None:
            self.counters[name].inc()


def install(app: Flask) -> None:
    """Serve ``/metrics`` and collect into it."""
    metrics = Metrics()
    security_event.connect(metrics.on_event, weak=False)

    @app.before_request
    def start_timer() -> None:
        g._coatcheck_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("_coatcheck_started", None)
        if started is not None:
            metrics.latency.labels(request.method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    @app.get("/metrics")
    def serve_metrics() -> Response:
        metrics.active.set(len(CoatCheck.state().store.list_all(limit=100_000)))
        registry = metrics.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
