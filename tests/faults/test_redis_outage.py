"""A real ``coatcheck serve`` on a Redis that stops or dies under traffic.

While Redis cannot answer, every request that needs the session store gets
503 ``store_unavailable``: never 200 (no anonymous pass-through, no session
served from the read cache), never 500, never a traceback. Once Redis is
back, the sessions stored before work again and a session revoked before
stays revoked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coatcheck.stores.redis_cache import LIVENESS_SECONDS

from ..conftest import TEST_SECRET_KEY
from ..service.served import Served, serve
from .conftest import DurableRedis
from .traffic import (
    Exchange,
    HttpClient,
    Traffic,
    anonymous_write,
    get,
    handle_of,
    login,
    login_attempt,
    register,
    replay,
)

USERS = ("alice-fault", "bobby-fault")
#: Requests whose session would be served, or a new one stored, with Redis up.
PROTECTED = {"me", "sessions", "verify", "account", "login"}
#: Needs no store at all: an anonymous visitor's lesson session lives in a signed cookie.
STORELESS = {"lesson"}
# One worker per traffic thread: during a freeze a request takes seconds
# (socket timeouts), and a queue behind it would only add to the test's time.
WORKERS = "6"


@dataclass
class Scene:
    served: Served
    clients: dict[str, HttpClient]
    handles: dict[str, str]
    revoked: HttpClient
    revoked_cookies: dict[str, str]
    traffic: Traffic


def start_scene(served: Served) -> Scene:
    """Log users in, revoke one session, start traffic and let every worker cache."""
    clients = {name: register(served.port, name) for name in USERS}
    handles = {name: handle_of(client) for name, client in clients.items()}
    revoked = login(served.port, USERS[0])
    revoked_cookies = dict(revoked.cookies)  # replayed even once the server clears them
    revoked_handle = handle_of(revoked)
    for _ in range(20):  # read it through as many workers as will take it: cached there
        assert revoked.request("GET", "/api/me").status == 200
    owner = clients[USERS[0]]
    assert owner.request("DELETE", f"/api/sessions/{revoked_handle}").status == 204
    assert revoked.request("GET", "/api/me").status == 401

    traffic = Traffic()
    first, second = (clients[name] for name in USERS)
    traffic.add([("me", get(first, "/api/me")), ("sessions", get(first, "/api/sessions"))])
    traffic.add([("verify", get(second, "/auth/verify")), ("me", get(second, "/api/me"))])
    traffic.add([("account", get(first, "/account", Accept="text/html"))])
    traffic.add([("revoked", replay(served.port, revoked_cookies, "/api/me"))])
    traffic.add([("login", login_attempt(served.port, USERS[1]))])
    traffic.add([("lesson", anonymous_write(served.port))])
    # Twice round: the sessions are cached by the workers that read them.
    for _ in range(2):
        traffic.wait_for_each(PROTECTED | {"revoked"}, time.monotonic(), timeout=20)
    return Scene(served, clients, handles, revoked, revoked_cookies, traffic)


def check_before(exchanges: list[Exchange], until: float) -> None:
    before = [e for e in exchanges if e.ended < until]
    assert {e.label for e in before} >= PROTECTED | {"revoked"}, "too little traffic"
    for e in before:
        expected = 401 if e.label == "revoked" else 200
        assert e.status == expected, e


def check_outage(exchanges: list[Exchange], start: float, end: float) -> None:
    during = [e for e in exchanges if e.within(start, end)]
    assert {e.label for e in during} >= PROTECTED | {"revoked"}, "too little traffic"
    for e in during:
        if e.label in STORELESS:
            assert e.status == 200, e
            continue
        assert e.status == 503, e
        if e.label == "account":
            assert e.content_type.startswith("text/html"), e
        else:
            assert e.error == "store_unavailable", e


def check_all(exchanges: list[Exchange]) -> None:
    for e in exchanges:
        assert e.failure == "", e
        assert e.status in (200, 401, 503), e
        if e.label == "revoked":
            assert e.status != 200, e  # a revoked session never comes back


def check_after(scene: Scene) -> None:
    for name, client in scene.clients.items():
        reply = client.request("GET", "/api/me")
        assert reply.status == 200, reply.body
        assert reply.json["session"]["handle"] == scene.handles[name]
        assert reply.json["user"]["username"] == name
        assert client.request("GET", "/api/sessions").status == 200
    assert scene.revoked.request("GET", "/api/me").status == 401
    assert replay(scene.served.port, scene.revoked_cookies, "/api/me")().status == 401
    assert login(scene.served.port, USERS[1]).request("GET", "/api/me").status == 200
    assert HttpClient(scene.served.port).request("GET", "/sessions/hello").status == 200
    assert HttpClient(scene.served.port).request("GET", "/readyz").status == 200


def run_outage(
    tmp_path: Path,
    redis: DurableRedis,
    go_down: Callable[[], None],
    come_back: Callable[[], None],
    *,
    grace: float = 0.0,
    **env: str,
) -> tuple[list[Exchange], float, float]:
    """Drive traffic through an outage; return the exchanges, when it began and ended."""
    env = {"SECRET_KEY": TEST_SECRET_KEY, "COATCHECK_STORE_URL": redis.url, **env}
    with serve(tmp_path / "instance", "--workers", WORKERS, **env) as served:
        scene = start_scene(served)
        with scene.traffic:
            down_at = time.monotonic()
            go_down()
            gone_at = time.monotonic()
            time.sleep(1.0)
            # Until every kind of request has been sent at least once after
            # the outage began (and the grace), whatever the first ones hung on.
            scene.traffic.wait_for_each(PROTECTED | {"revoked"}, gone_at + grace, timeout=20)
            # Stop sending, and let the requests in flight finish before Redis
            # is back: each of them was answered by a server without Redis.
            exchanges = scene.traffic.stop()
        back_at = time.monotonic()
        come_back()
        check_after(scene)
    check_all(exchanges)
    check_before(exchanges, down_at)
    return exchanges, gone_at, back_at


def test_a_frozen_redis_fails_closed_and_recovers(
    tmp_path: Path, durable_redis: DurableRedis
) -> None:
    """SIGSTOP: the connections stay open, nothing answers and nothing closes.

    Each request then waits for socket timeouts: 0.25 s here instead of the
    default 2 s, so that a request takes about 1 s instead of 8 (the cache's
    PING, then three attempts); the outcome does not depend on the figure.
    """
    # A cached session may be served for LIVENESS_SECONDS after Redis last
    # proved alive, never later (redis_cache.py).
    exchanges, stopped_at, resumed_at = run_outage(
        tmp_path,
        durable_redis,
        durable_redis.pause,
        durable_redis.resume,
        grace=LIVENESS_SECONDS,
        COATCHECK_STORE_URL=f"{durable_redis.url}?socket_timeout=0.25",
        COATCHECK_RATELIMIT_URL=f"{durable_redis.url}?socket_timeout=0.25",
    )
    check_outage(exchanges, stopped_at + LIVENESS_SECONDS, resumed_at)


def test_a_restarted_redis_fails_closed_and_recovers_its_sessions(
    tmp_path: Path, durable_redis: DurableRedis
) -> None:
    """Terminated and started again on its append-only file, on the same port."""
    exchanges, gone_at, back_at = run_outage(
        tmp_path, durable_redis, durable_redis.terminate, durable_redis.start
    )
    check_outage(exchanges, gone_at, back_at)
    refused = [e for e in exchanges if e.within(gone_at, back_at)]
    assert len(refused) > 20  # refused connections fail fast: many requests were answered
