"""Fixtures shared by the whole suite: clock, real services, stores, apps."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import settings

from coatcheck.core.clock import ManualClock
from coatcheck.core.passwords import PasswordHasher
from coatcheck.stores.base import SessionStore, open_store

REDIS_URL = os.environ.get("COATCHECK_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
IN_CI = os.environ.get("CI", "").lower() == "true"
STORE_KINDS = ["memory", "sqlite", "redis"]
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef"

# Hypothesis draws the same examples on every run and no verdict hangs on the
# machine's load (no deadline): a failure is the code's, never the draw's.
# `pytest --hypothesis-profile=explore` draws fresh examples when looking for bugs.
settings.register_profile("coatcheck", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", settings.get_profile("coatcheck"), derandomize=False)
settings.load_profile("coatcheck")


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, which must never skip silently."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: service tests may not be skipped)")
    pytest.skip(reason)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def redis_url(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis store URL with a prefix of its own; its keys are removed afterwards."""
    prefix = f"cctest:{uuid.uuid4().hex[:12]}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def any_store_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(store_kind, request, tmp_path)


@pytest.fixture
def store(any_store_url: str, clock: ManualClock) -> Iterator[SessionStore]:
    opened = open_store(any_store_url, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def make_app(any_store_url: str, clock: ManualClock, tmp_path: Path) -> Callable[..., Flask]:
    """Return a factory of small apps using coatcheck on the parametrised store."""
    from coatcheck import CoatCheck

    def factory(store: SessionStore | None = None, **config: Any) -> Flask:
        app = Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(
            {
                "TESTING": True,
                "SECRET_KEY": TEST_SECRET_KEY,
                "COATCHECK_STORE_URL": any_store_url,
                "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
                **config,
            }
        )
        CoatCheck(app, store=store, clock=clock, hasher=PasswordHasher.fast_for_tests())
        return app

    return factory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


class PrivateRedis:
    """A redis-server of the test's own on a free port, never the shared one."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
        raise AssertionError  # unreachable: unavailable() skips or fails
    server = PrivateRedis(binary, tmp_path)
    try:
        yield server
    finally:
        server.stop()
