"""Prometheus metrics at ``/metrics`` (``coatcheck serve --metrics``).

Counters follow the library's security events; request latency is timed
around every request. With several server workers each worker counts for
itself unless ``PROMETHEUS_MULTIPROC_DIR`` is set (``coatcheck serve`` sets it).

The endpoint answers only a bearer token: ``COATCHECK_METRICS_TOKEN``, or else
one generated once into ``<instance>/metrics_token`` (mode 0600). Every label
takes its values from a fixed set, so no request can add a time series, and a
scrape costs the store one count per record kind, never a listing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.errors import ConfigurationError
from ..core.records import RecordKind
from ..ext import CoatCheck
from ..ext.signals import security_event
from ..stores.base import SessionStore
from ..users.outbox import OutboxStore

_EVENTS = {
    "login_succeeded": "logins",
    "login_failed": "login_failures",
    "login_throttled": "logins_throttled",
    "session_revoked": "revocations",
    "all_sessions_revoked": "revocations",
    "remember_token_theft": "theft_detections",
    "refresh_token_reuse": "theft_detections",
}

#: Methods that get a latency label of their own; any other is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Status codes that get a label of their own; any other is counted as ``other``.
STATUSES = frozenset(status.value for status in HTTPStatus)
#: The record kinds of the active-sessions gauge (revocation stamps are no sessions).
ACTIVE_KINDS = (RecordKind.SESSION, RecordKind.REMEMBER, RecordKind.TOKEN_FAMILY)
#: The generated token's file in the instance folder.
TOKEN_FILE = "metrics_token"  # noqa: S105 - a file name
#: Shortest ``COATCHECK_METRICS_TOKEN`` accepted (characters).
MIN_TOKEN_LENGTH = 32


def method_label(method: str) -> str:
    """Return the latency label of a request method: itself if standard, else ``other``."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """Return the latency label of a status code: itself if registered, else ``other``."""
    return str(status) if status in STATUSES else "other"


class ActiveSessions(Collector):
    """The live records of each kind, counted by the store when scraped."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def describe(self) -> Iterator[Metric]:
        """Name the gauge without counting (the registry asks when it is registered)."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """Count each kind once."""
        gauge = self._family()
        for kind in ACTIVE_KINDS:
            gauge.add_metric([kind.value], self.store.count(kind))
        yield gauge

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "coatcheck_active_sessions",
            "Live records in the store by kind: cookie sessions, remember-me series, "
            "token families (counted when scraped)",
            labels=["kind"],
        )


class MailOutbox(Collector):
    """The outbox's mails by status (SPEC §9), counted when scraped: failed ones show here."""

    def __init__(self, outbox: Callable[[], OutboxStore]) -> None:
        self.outbox = outbox

    def describe(self) -> Iterator[Metric]:
        """Name the gauge without counting."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """Count the mails of each status in one query."""
        gauge = self._family()
        for status, count in self.outbox().counts().items():
            gauge.add_metric([status], count)
        yield gauge

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "coatcheck_mail_outbox",
            "Mails in the outbox by status: pending, sending, sent, failed, dropped "
            "(counted when scraped)",
            labels=["status"],
        )


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

    def on_event(self, sender: Any, event: str, **_: Any) -> None:
        name = _EVENTS.get(event)
        if name is not None:
            self.counters[name].inc()


def metrics_token(config: Mapping[str, Any], instance: str | os.PathLike[str]) -> str:
    """Return the bearer token ``/metrics`` wants: the configured one, or the instance's.

    A configured ``COATCHECK_METRICS_TOKEN`` shorter than :data:`MIN_TOKEN_LENGTH`
    is refused at start.
    """
    configured = config.get("COATCHECK_METRICS_TOKEN")
    if configured:
        token = str(configured).strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"COATCHECK_METRICS_TOKEN is too short: use at least {MIN_TOKEN_LENGTH} random "
                "characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return token
    return instance_metrics_token(instance)


def instance_metrics_token(instance: str | os.PathLike[str]) -> str:
    """Return the token kept in ``<instance>/metrics_token``, generating it once (mode 0600).

    The first process to get here creates the file exclusively; every other
    worker, and every later start, reads the same token.
    """
    path = Path(instance) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    for _ in range(100):  # a concurrent creator may not have written it yet
        token = path.read_text().strip()
        if token:
            return token
        time.sleep(0.02)
    raise ConfigurationError(f"the metrics token file {path} is empty")


def _refusal(token: str) -> Response | None:
    """Return the answer to a scrape without the right bearer token, or ``None``."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = _json_error(401, "unauthenticated", "Send the metrics bearer token.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="coatcheck metrics"'
        return response
    # Digests first: compare_digest is constant-time only for inputs of one length.
    expected = hashlib.sha256(token.encode()).digest()
    offered = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
    if not hmac.compare_digest(offered, expected):
        return _json_error(403, "forbidden", "That is not the metrics token.")
    return None


def _json_error(status: int, code: str, message: str) -> Response:
    # A scraper, not a browser: always the JSON error shape, whatever it accepts.
    body = json.dumps({"error": code, "message": message})
    return Response(body, status=status, mimetype="application/json")


def install(app: Flask) -> None:
    """Serve ``/metrics`` behind a bearer token, and collect into it."""
    token = metrics_token(app.config, app.instance_path)
    metrics = Metrics()
    state = CoatCheck.state(app)
    active = ActiveSessions(state.store)
    outbox = MailOutbox(lambda: state.users.outbox)
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not multiprocess_dir:
        metrics.registry.register(active)
        metrics.registry.register(outbox)
    # Only this application's events: the signal is shared by every app in the process.
    security_event.connect(metrics.on_event, sender=state, weak=False)

    @app.before_request
    def start_timer() -> None:
        g._coatcheck_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("_coatcheck_started", None)
        if started is not None:
            labels = (method_label(request.method), status_label(response.status_code))
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def serve_metrics() -> Response:
        refusal = _refusal(token)
        if refusal is not None:
            return refusal
        registry = metrics.registry
        if multiprocess_dir:
            # Counters come from every worker's files; the gauge is counted now.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(active)
            registry.register(outbox)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
