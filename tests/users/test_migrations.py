"""The user store's Alembic migrations, on a SQLite file and the real PostgreSQL."""

from __future__ import annotations

import io
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, column, inspect, select, table, text, update

from coatcheck.core.errors import ConfigurationError
from coatcheck.service.cli import main
from coatcheck.users import LOGIN_SUCCEEDED, UserStore
from coatcheck.users.migrations import VERSION_TABLE, alembic_config
from coatcheck.users.models import Base

from . import test_user_store

# The fixtures of the user store's tests: a SQLite file and a fresh PostgreSQL schema.
pg_admin = test_user_store.pg_admin
pg_url = test_user_store.pg_url
db_url = test_user_store.db_url

HASH = test_user_store.HASH
TABLES = {
    "coatcheck_users",
    "coatcheck_audit_events",
    "coatcheck_factors",
    "coatcheck_recovery_codes",
    "coatcheck_outbox",
    "coatcheck_email_tokens",
    "coatcheck_known_devices",
}
#: What ``metadata.create_all`` made before migrations existed (revision 0001).


def create_legacy_tables(store: UserStore) -> None:
    """Make the tables as ``metadata.create_all`` made them before migrations existed:
    revision 0001's, with no version table."""
    store.upgrade_schema("0001")
    with store.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def add_legacy_user(store: UserStore, name: str = "alice") -> int:
    """Add a user to revision 0001's table (the ORM knows later columns); return its ID."""
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO coatcheck_users (username, username_key, password_hash, roles, "
                "created_at, disabled) VALUES (:name, :name, :hash, '[]', :at, false)"
            ),
            {"name": name, "hash": HASH, "at": datetime.now(UTC)},
        )
        found = connection.execute(
            text("SELECT id FROM coatcheck_users WHERE username = :name"), {"name": name}
        )
        return int(found.scalar_one())


HEAD = "0003"
# Nothing listens on loopback port 1; engines connect lazily, so these never do.
LAZY_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"
VERSION = table(VERSION_TABLE, column("version_num"))


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[..., UserStore]]:
    """Return a factory of stores on the parametrised database, schema untouched."""
    opened: list[UserStore] = []

    def factory(**kwargs: Any) -> UserStore:
        store = UserStore(db_url, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def users(open_store: Callable[..., UserStore]) -> UserStore:
    return open_store()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(VERSION.c.version_num)))


def schema_of(engine: Engine) -> dict[str, Any]:
    """Return what matters of the coatcheck tables: columns, keys, uniques and indexes."""
    inspector = inspect(engine)
    schema: dict[str, Any] = {}
    for name in sorted(TABLES):
        schema[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"])
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "indexes": sorted(
                (i["name"] or "", tuple(map(str, i["column_names"])), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            ),
        }
    return schema


# Upgrading


def test_upgrade_from_empty_creates_the_tables_and_records_head(users: UserStore) -> None:
    assert users.schema_revision() is None
    assert users.head_revision() == HEAD
    users.upgrade_schema()
    assert table_names(users.engine) == TABLES | {VERSION_TABLE}
    assert users.schema_revision() == HEAD
    assert version_rows(users.engine) == [HEAD]
    user = users.create_user("alice", HASH)
    assert users.get_by_username("alice") == user


def test_upgrading_twice_changes_nothing(users: UserStore) -> None:
    users.create_schema()
    user = users.create_user("alice", HASH)
    users.record_event(LOGIN_SUCCEEDED, user_id=user.id)
    users.upgrade_schema()
    users.create_schema()
    assert version_rows(users.engine) == [HEAD]
    assert users.get(user.id) == user
    assert users.count_events() == 1


def _start_worker(url: str, barrier: Any, results: Any) -> None:
    """Open a store and create its schema when every worker is ready (in a child process)."""
    store = UserStore(url)
    try:
        barrier.wait(timeout=60)
        store.create_schema()
        results.put("ok")
    except BaseException as exc:  # the parent asserts on it
        results.put(repr(exc))
    finally:
        store.close()


def test_several_processes_starting_together_migrate_once(users: UserStore, db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(target=_start_worker, args=(db_url, barrier, results)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=90) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    results.close()
    assert outcomes == ["ok"] * 4
    assert version_rows(users.engine) == [HEAD]


def test_threads_migrating_different_databases_at_once(tmp_path: Path) -> None:
    # Alembic's context is process-wide: migrations in one process take turns.
    stores = [UserStore(f"sqlite:///{tmp_path / f'users{i}.db'}") for i in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def start(store: UserStore) -> None:
        barrier.wait(timeout=60)
        try:
            store.create_schema()
        except BaseException as exc:  # asserted on in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert [s.schema_revision() for s in stores] == [HEAD] * len(stores)
    finally:
        for store in stores:
            store.close()


def test_tables_made_by_create_all_are_adopted_not_made_again(users: UserStore) -> None:
    create_legacy_tables(users)  # what create_schema() did before migrations
    user_id = add_legacy_user(users)
    users.record_event(LOGIN_SUCCEEDED, user_id=user_id)
    assert users.schema_revision() is None
    users.create_schema()
    assert users.schema_revision() == HEAD
    assert version_rows(users.engine) == [HEAD]
    user = users.get(user_id)
    assert user is not None and user.username == "alice"
    assert (user.email_verified, user.notify_new_device) == (False, True)  # the new columns
    assert users.count_events() == 1
    users.create_schema()
    assert version_rows(users.engine) == [HEAD]


def test_db_upgrade_adopts_create_all_tables_too(users: UserStore) -> None:
    create_legacy_tables(users)
    user_id = add_legacy_user(users)
    users.upgrade_schema()
    assert users.schema_revision() == HEAD
    assert users.get(user_id) is not None


def test_half_made_tables_are_refused_untouched(users: UserStore) -> None:
    Base.metadata.tables["coatcheck_users"].create(users.engine)
    with pytest.raises(ConfigurationError, match="half-made"):
        users.create_schema()
    assert table_names(users.engine) == {"coatcheck_users"}


def test_a_database_newer_than_the_code_is_refused(users: UserStore) -> None:
    users.create_schema()
    with users.engine.begin() as connection:
        connection.execute(update(VERSION).values(version_num="9999"))
    with pytest.raises(ConfigurationError, match="9999"):
        users.create_schema()
    assert users.schema_revision() == "9999"


# Downgrading and the shape of the schema


def test_downgrade_to_base_drops_the_tables(users: UserStore) -> None:
    users.upgrade_schema()
    users.create_user("alice", HASH)
    with users.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert table_names(users.engine) - {VERSION_TABLE} == set()
    assert users.schema_revision() is None
    users.upgrade_schema()  # and back up again, empty
    assert users.schema_revision() == HEAD
    assert users.count_users() == 0


def test_the_migrated_schema_matches_the_models(users: UserStore) -> None:
    users.upgrade_schema()
    with users.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_the_migrated_schema_is_what_create_all_made(users: UserStore) -> None:
    Base.metadata.create_all(users.engine)
    made_by_create_all = schema_of(users.engine)
    Base.metadata.drop_all(users.engine)
    users.upgrade_schema()
    migrated = schema_of(users.engine)
    assert migrated == made_by_create_all
    assert migrated["coatcheck_users"]["unique"] == [
        ("uq_coatcheck_users_username_key", ("username_key",))
    ]
    assert [name for name, _, _ in migrated["coatcheck_audit_events"]["indexes"]] == [
        "ix_coatcheck_audit_events_at",
        "ix_coatcheck_audit_events_event",
        "ix_coatcheck_audit_events_user_id",
    ]


def test_the_migrations_can_be_written_as_sql() -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://")
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE coatcheck_users" in sql
    assert "CREATE INDEX ix_coatcheck_audit_events_at" in sql
    assert "INSERT INTO coatcheck_alembic_version (version_num) VALUES ('0001')" in sql


def test_the_environment_needs_a_connection() -> None:
    with pytest.raises(RuntimeError, match="connection"):
        command.upgrade(alembic_config(), "head")


# Pool sizing


def pool_of(store: UserStore) -> Any:
    return store.engine.pool


def test_postgresql_pool_defaults() -> None:
    store = UserStore(LAZY_PG_URL)
    pool = pool_of(store)
    assert pool.size() == 5
    assert pool._max_overflow == 5
    assert pool._recycle == 1800
    assert pool._pre_ping is True


def test_pool_size_comes_from_the_settings(tmp_path: Path) -> None:
    from coatcheck.core.settings import Settings

    settings = Settings.from_config(
        {"COATCHECK_DATABASE_POOL_SIZE": " 12 "}, instance_path=str(tmp_path)
    )
    assert settings.database_pool_size == 12
    assert pool_of(UserStore(LAZY_PG_URL, pool_size=settings.database_pool_size)).size() == 12


@pytest.mark.parametrize("value", ["many", "0", "-2", "2.5"])
def test_a_bad_pool_size_is_refused(tmp_path: Path, value: str) -> None:
    from coatcheck.core.settings import Settings

    with pytest.raises(ConfigurationError):
        Settings.from_config({"COATCHECK_DATABASE_POOL_SIZE": value}, instance_path=str(tmp_path))


# The command line


@pytest.fixture
def instance(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in (
        "COATCHECK_STORE_URL",
        "COATCHECK_DATABASE_URL",
        "COATCHECK_CONFIG",
        "COATCHECK_DATABASE_POOL_SIZE",
        "SECRET_KEY",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COATCHECK_INSTANCE", str(tmp_path / "cli-instance"))
    monkeypatch.setenv("COATCHECK_DATABASE_URL", db_url)
    return tmp_path / "cli-instance"


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_db_revision_and_upgrade(instance: Path, db_url: str) -> None:
    assert run("db", "revision").splitlines() == [
        "current  none (not the head: run coatcheck db upgrade)",
        f"head     {HEAD}",
    ]
    assert run("db", "upgrade") == f"database at revision {HEAD} (head)\n"
    assert run("db", "revision").splitlines() == [f"current  {HEAD}", f"head     {HEAD}"]
    assert run("db", "upgrade") == f"database at revision {HEAD} (head)\n"
    store = UserStore(db_url)
    try:
        assert version_rows(store.engine) == [HEAD]
        assert table_names(store.engine) == TABLES | {VERSION_TABLE}
    finally:
        store.close()


def test_db_upgrade_adopts_an_instance_made_by_create_all(instance: Path, db_url: str) -> None:
    store = UserStore(db_url)
    try:
        create_legacy_tables(store)
        add_legacy_user(store)
    finally:
        store.close()
    assert run("db", "revision").splitlines()[0].startswith("current  none")
    assert run("db", "upgrade") == f"database at revision {HEAD} (head)\n"
    store = UserStore(db_url)
    try:
        assert store.schema_revision() == HEAD
        assert store.get_by_username("alice") is not None
    finally:
        store.close()
