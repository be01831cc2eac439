"""``coatcheck check`` reaches every backend; read-only commands write nothing; file modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine

from coatcheck.service import create_app
from coatcheck.service.probes import describe_url

from ..conftest import TEST_SECRET_KEY, free_port
from ..users.test_user_store import pg_admin
from .test_cli import PASSWORD, instance, run

__all__ = ["instance", "pg_admin"]  # fixtures, used by name

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def test_read_only_commands_write_nothing(instance: Path) -> None:
    for args in (("user", "list"), ("sessions", "list"), ("check",)):
        run(*args)
        assert not instance.exists(), args
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    before = {p: os.stat(instance / p).st_mtime_ns for p in _files(instance)}
    assert "secret_key" in before
    assert "alice" in run("user", "list")
    run("sessions", "list")
    run("check")
    after = _files(instance)
    assert after <= set(before) | {"coatcheck.db-wal", "coatcheck.db-shm"}, after - set(before)
    assert (instance / "secret_key").stat().st_mtime_ns == before["secret_key"]


def test_instance_files_are_for_the_owner_only(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    app = create_app({"TESTING": True, "COATCHECK_METRICS": True})
    from coatcheck import CoatCheck

    from ..ext.auth_app import Browser

    assert Browser(app).login("alice", PASSWORD).status_code == 200
    assert app.test_client().get("/metrics", base_url="https://localhost").status_code == 401
    CoatCheck.state(app).close()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    for name in ("secret_key", "coatcheck.db", "sessions.db", "throttle.db", "metrics_token"):
        path = instance / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_check_shows_urls_with_port_and_options_and_masks_passwords() -> None:
    assert describe_url("redis://:s3cret@cache.example:6380/2?prefix=app:") == (
        "redis://:***@cache.example:6380/2?prefix=app:"
    )
    assert describe_url("redis://user:pw@cache/0") == "redis://user:***@cache:6379/0"
    assert describe_url("postgresql+psycopg://u:pw@db/users?sslmode=require") == (
        "postgresql+psycopg://u:***@db:5432/users?sslmode=require"
    )
    assert describe_url("redis://cache:6379/0?password=pw") == "redis://cache:6379/0?password=***"
    assert describe_url("redis+cluster://a:7000,b:7001") == "redis+cluster://a:7000,b:7001"


def test_check_fails_on_an_unreachable_redis(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    port = free_port()
    monkeypatch.setenv(
        "COATCHECK_STORE_URL", f"redis://:hunter2-secret@127.0.0.1:{port}/0?prefix=x:"
    )
    out = run("check", ok=False)
    assert f"127.0.0.1:{port}" in out and "?prefix=x:" in out
    assert "PROBLEM  session store" in out and "unreachable" in out
    assert "hunter2-secret" not in out
    assert "Connection refused" in out or "connecting" in out


def test_check_reaches_a_live_redis(
    instance: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("COATCHECK_STORE_URL", redis_url)
    out = run("check")
    assert "OK       session store at redis://127.0.0.1:6379/9?prefix=" in out
    assert "OK       throttle counters at redis://127.0.0.1:6379/9 answer" in out


def test_check_names_another_instances_key(
    instance: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    create_app(
        {"SECRET_KEY": "another-instance-key-0123456789abcdef", "COATCHECK_STORE_URL": redis_url}
    )
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("COATCHECK_STORE_URL", redis_url)
    out = run("check", ok=False)
    assert "SECRET_KEY differs from the one the other instances on this store sign with" in out


def test_check_fails_on_a_missing_postgresql_database(
    instance: Path, monkeypatch: pytest.MonkeyPatch, pg_admin: Engine
) -> None:
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("COATCHECK_DATABASE_URL", POSTGRES.replace("/test", "/no_such_db"))
    out = run("check", ok=False)
    assert (
        "PROBLEM  user database at postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db" in out
    )
    assert 'database "no_such_db" does not exist' in out


def test_check_on_a_fresh_instance_says_where_files_will_be(instance: Path) -> None:
    out = run("check")
    assert "does not exist yet; it is created at the first start" in out
    assert "SECRET_KEY is not set" in out
