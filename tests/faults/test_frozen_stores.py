"""SPEC §11: a store that stops answering (frozen, not refusing) under traffic.

With the default timeouts (``COATCHECK_STORE_TIMEOUT``,
``COATCHECK_DATABASE_TIMEOUT``) every request that needs the frozen store,
and ``/readyz``, answers 503 within a second, and every one answers again once
the store does, with no restart. One second is the SPEC's bound, not a
measurement: the figures are in docs/robustness.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from coatcheck.stores.redis_cache import LIVENESS_SECONDS

from ..conftest import TEST_SECRET_KEY
from ..service.served import Reply, serve
from ..users.test_user_store import pg_admin, pg_url  # noqa: F401 - fixtures
from .conftest import DurableRedis
from .proxy import TcpProxy
from .traffic import PASSWORD, Exchange, HttpClient, Step, Traffic, get, handle_of, register

#: SPEC §11: a request that needs a frozen store answers within this.
BOUND = 1.0
#: How long the store stays frozen.
PAUSE = 3.0
WORKERS = "4"


def ready(port: int) -> Step:
    return lambda: HttpClient(port).request("GET", "/readyz")


def login_with(port: int, prepared: HttpClient, username: str) -> Step:
    """Return a step posting a login from a new client holding ``prepared``'s CSRF token."""

    def step() -> Reply:
        client = HttpClient(port, cookies=dict(prepared.cookies), csrf=prepared.csrf)
        return client.request("POST", "/api/login", {"username": username, "password": PASSWORD})

    return step


def prepared_client(port: int) -> HttpClient:
    client = HttpClient(port)
    client.fetch_csrf()
    return client


def freeze_under(
    traffic: Traffic, labels: set[str], freeze: object, thaw: object
) -> tuple[list[Exchange], float, float]:
    """Freeze for :data:`PAUSE` seconds under ``traffic``; return its exchanges and the pause."""
    traffic.wait_for_each(labels, time.monotonic(), timeout=20)
    frozen_at = time.monotonic()
    freeze()  # type: ignore[operator]
    time.sleep(PAUSE)
    thawed_at = time.monotonic()
    thaw()  # type: ignore[operator]
    time.sleep(0.5)
    return traffic.stop(), frozen_at, thawed_at


def check_pause(
    exchanges: list[Exchange], frozen_at: float, thawed_at: float, failing: set[str]
) -> None:
    """Each request sent in the pause answered within the bound; those in ``failing``, 503."""
    sent = [e for e in exchanges if frozen_at <= e.started < thawed_at]
    assert {e.label for e in sent} >= failing, "too little traffic"
    for e in sent:
        assert e.failure == "", e
        assert e.ended - e.started < BOUND, e
        # A request may still be answered from a read cache that was exact
        # when the store froze, for LIVENESS_SECONDS (redis_cache.py).
        cache_stale = e.started >= frozen_at + LIVENESS_SECONDS
        if e.label in failing and cache_stale and e.ended <= thawed_at:
            assert e.status == 503, e
    for label in failing:
        answered = [e for e in sent if e.label == label and e.ended <= thawed_at]
        assert any(e.status == 503 for e in answered), label


def test_a_frozen_redis_answers_503_within_a_second_and_recovers(
    tmp_path: Path, durable_redis: DurableRedis
) -> None:
    env = {"SECRET_KEY": TEST_SECRET_KEY, "COATCHECK_STORE_URL": durable_redis.url}
    with serve(tmp_path / "instance", "--workers", WORKERS, **env) as served:
        port = served.port
        alice, bobby = register(port, "alice-frozen"), register(port, "bobby-frozen")
        handles = {"alice": handle_of(alice), "bobby": handle_of(bobby)}
        prepared = prepared_client(port)
        labels = {"me", "sessions", "verify", "login", "readyz"}
        with Traffic() as traffic:
            traffic.add([("me", get(alice, "/api/me")), ("sessions", get(alice, "/api/sessions"))])
            traffic.add([("verify", get(bobby, "/auth/verify")), ("me", get(bobby, "/api/me"))])
            traffic.add([("login", login_with(port, prepared, "bobby-frozen"))])
            traffic.add([("readyz", ready(port))])
            traffic.add([("healthz", get(HttpClient(port), "/healthz"))])
            exchanges, frozen_at, thawed_at = freeze_under(
                traffic, labels, durable_redis.pause, durable_redis.resume
            )
        check_pause(exchanges, frozen_at, thawed_at, labels)
        assert all(e.status == 200 for e in exchanges if e.label == "healthz")
        for name, client in (("alice", alice), ("bobby", bobby)):
            me = client.request("GET", "/api/me")
            assert me.status == 200, me.body
            assert me.json["session"]["handle"] == handles[name]
        assert HttpClient(port).request("GET", "/readyz").status == 200
        assert prepared_client(port).login("alice-frozen", PASSWORD).status == 200


@pytest.fixture
def frozen_proxy() -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", 5432)) as opened:
        yield opened


def test_a_frozen_postgresql_answers_503_within_a_second_and_recovers(
    tmp_path: Path,
    pg_url: str,  # noqa: F811 - the fixture
    frozen_proxy: TcpProxy,
) -> None:
    database = make_url(pg_url).set(port=frozen_proxy.port).render_as_string(hide_password=False)
    env = {"SECRET_KEY": TEST_SECRET_KEY, "COATCHECK_DATABASE_URL": database}
    with serve(tmp_path / "instance", "--workers", WORKERS, **env) as served:
        port = served.port
        created = served.cli(
            "user", "create", "root-frozen", "--admin", "--password-stdin", input=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        admin = prepared_client(port)
        assert admin.login("root-frozen", PASSWORD).status == 200
        alice = register(port, "alice-pg-frozen")
        prepared = prepared_client(port)
        labels = {"login", "admin", "readyz"}
        with Traffic() as traffic:
            traffic.add([("login", login_with(port, prepared, "alice-pg-frozen"))])
            traffic.add([("admin", get(admin, "/api/admin/users"))])
            traffic.add([("readyz", ready(port))])
            # Sessions need no SQL: they keep working.
            traffic.add([("me", get(alice, "/api/me"))])
            exchanges, frozen_at, thawed_at = freeze_under(
                traffic, labels, frozen_proxy.freeze, frozen_proxy.thaw
            )
        check_pause(exchanges, frozen_at, thawed_at, labels)
        assert all(e.status == 200 for e in exchanges if e.label == "me")
        assert admin.request("GET", "/api/admin/users").status == 200
        assert HttpClient(port).request("GET", "/readyz").status == 200
        assert prepared_client(port).login("alice-pg-frozen", PASSWORD).status == 200
