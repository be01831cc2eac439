"""The user store and audit log, run against a SQLite file and the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import (
    ConfigurationError,
    InvalidUsername,
    StoreUnavailable,
    UsernameTaken,
)
from coatcheck.users import (
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    LOGOUT,
    MAX_ID,
    MAX_PAGE,
    PASSWORD_CHANGED,
    AuditEvent,
    InvalidEmail,
    UnknownUser,
    User,
    UserStore,
)

from ..conftest import unavailable

PG_URL = os.environ.get(
    "COATCHECK_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Loopback port 1: nothing listens there, so connections are refused at once.
UNREACHABLE_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
OTHER_HASH = "$2b$12$abcdefghijklmnopqrstuuJ0eEa3v0q1w3rLz6y1e8XqkRz8QbWy"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = create_engine(
        PG_URL,
        connect_args={"connect_timeout": 2},
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        unavailable(f"PostgreSQL at {PG_URL} is unreachable: {exc.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped afterwards."""
    schema = f"cctest_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'instance' / 'users.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_user_store(db_url: str, clock: ManualClock) -> Iterator[Callable[..., UserStore]]:
    """Return a factory of stores on the parametrised database, closed afterwards."""
    opened: list[UserStore] = []

    def factory(**kwargs: Any) -> UserStore:
        kwargs.setdefault("clock", clock)
        store = UserStore(db_url, **kwargs)
        opened.append(store)
        store.create_schema()
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def users(open_user_store: Callable[..., UserStore]) -> UserStore:
    return open_user_store()


def at(clock: ManualClock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


# Users


def test_create_then_get_by_id_and_by_username_in_any_case(users: UserStore) -> None:
    created = users.create_user("Alice.B", HASH, email="alice@example.com", roles=["user"])
    assert isinstance(created, User)
    assert created.username == "Alice.B"
    assert created.email == "alice@example.com"
    assert created.password_hash == HASH
    assert created.roles == ("user",)
    assert created.disabled is False
    assert created.password_changed_at is None
    assert users.get(created.id) == created
    for spelling in ("Alice.B", "alice.b", "ALICE.B", "aLiCe.b"):
        assert users.get_by_username(spelling) == created


def test_user_is_a_frozen_value_that_hides_its_hash(users: UserStore) -> None:
    user = users.create_user("alice", HASH)
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.username = "mallory"  # type: ignore[misc]
    assert HASH not in repr(user)
    assert "alice" in repr(user)


def test_missing_users_are_none(users: UserStore) -> None:
    assert users.get(12345) is None
    assert users.get_by_username("nobody") is None
    # Names that cannot exist are answered without asking the database.
    for name in ("", "x" * 10_000, "a\x00b", "\ud800abc", "ab"):
        assert users.get_by_username(name) is None


@pytest.mark.parametrize("second", ["alice", "ALICE", "Alice", "aliCE"])
def test_duplicate_username_in_any_case_is_taken(users: UserStore, second: str) -> None:
    users.create_user("alice", HASH)
    with pytest.raises(UsernameTaken):
        users.create_user(second, OTHER_HASH)
    assert users.count_users() == 1


def test_concurrent_creation_of_one_name_succeeds_once(users: UserStore) -> None:
    # The unique key decides under a race, not a check-then-insert.
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt(name: str) -> None:
        barrier.wait()
        try:
            users.create_user(name, HASH)
            outcomes.append("created")
        except UsernameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in ["bob", "BOB", "Bob"] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["taken"] * 5
    assert users.count_users() == 1


@pytest.mark.parametrize("name", ["abc", "a" * 64, "A.b_c-9", "0123", "..."])
def test_valid_usernames(users: UserStore, name: str) -> None:
    assert users.create_user(name, HASH).username == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "a" * 65,
        "al ice",
        "alice!",
        "alice@example.com",
        "ålice",  # Unicode letters are refused: ASCII only
        "\u0430dmin",  # Cyrillic "а": a look-alike of "admin"
        "a\x00b",
        "alice\n",
        "\ud800abc",
        None,
        42,
    ],
)
def test_invalid_usernames_are_refused(users: UserStore, name: Any) -> None:
    with pytest.raises(InvalidUsername, match="3 to 64"):
        users.create_user(name, HASH)
    assert users.count_users() == 0


@pytest.mark.parametrize(
    "email", [None, "alice@example.com", "a@b", "a+tag@sub.example.org", "a@" + "b" * 252]
)
def test_valid_emails(users: UserStore, email: str | None) -> None:
    user = users.create_user("alice", HASH, email=email)
    assert user.email == email
    assert users.get(user.id) == user


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "@example.com",
        "alice@",
        "a@b@c",
        "al ice@example.com",
        "alice@exa mple.com",
        "alice\n@example.com",
        "a\x00@b.c",
        "\ud800@b.c",
        "a@" + "b" * 253,
        42,
    ],
)
def test_invalid_emails_are_refused(users: UserStore, email: Any) -> None:
    with pytest.raises(InvalidEmail):
        users.create_user("alice", HASH, email=email)
    assert users.count_users() == 0


@pytest.mark.parametrize("not_a_hash", ["", "correct horse battery staple", None])
def test_a_plaintext_password_is_never_stored(users: UserStore, not_a_hash: Any) -> None:
    with pytest.raises(ValueError, match="encoded hash"):
        users.create_user("alice", not_a_hash)
    user = users.create_user("alice", HASH)
    with pytest.raises(ValueError, match="encoded hash"):
        users.set_password_hash(user.id, not_a_hash)
    assert users.get(user.id) == user


def test_list_and_count_users_in_pages(users: UserStore) -> None:
    assert users.list_users() == []
    assert users.count_users() == 0
    created = [users.create_user(f"user{i:02}", HASH) for i in range(7)]
    assert users.count_users() == 7
    assert users.list_users() == created
    assert users.list_users(limit=3) == created[:3]
    assert users.list_users(offset=3, limit=3) == created[3:6]
    assert users.list_users(offset=6, limit=3) == created[6:]
    assert users.list_users(offset=7) == []
    assert users.list_users(limit=0) == []


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, -1), (0, MAX_PAGE + 1)])
def test_bad_pages_are_refused(users: UserStore, offset: int, limit: int) -> None:
    with pytest.raises(ValueError):
        users.list_users(offset=offset, limit=limit)
    with pytest.raises(ValueError):
        users.list_events(offset=offset, limit=limit)


# Roles, disabling, password changes


def test_roles_are_deduplicated_sorted_and_replaced(users: UserStore) -> None:
    user = users.create_user("alice", HASH, roles=["user", "admin", "user"])
    assert user.roles == ("admin", "user")
    assert user.has_role("admin") and not user.has_role("root")
    updated = users.set_roles(user.id, iter(["ops-team", "ops_team", "a1"]))
    assert updated.roles == ("a1", "ops-team", "ops_team")
    assert users.get(user.id) == updated
    assert users.set_roles(user.id, []).roles == ()
    assert users.get_by_username("alice") == dataclasses.replace(user, roles=())


@pytest.mark.parametrize("role", ["", "Admin", "a" * 33, "ad min", "ädmin", "admin\n", 7])
def test_invalid_roles_are_refused(users: UserStore, role: Any) -> None:
    with pytest.raises(ValueError, match="invalid role"):
        users.create_user("alice", HASH, roles=["user", role])
    user = users.create_user("alice", HASH, roles=["user"])
    with pytest.raises(ValueError, match="invalid role"):
        users.set_roles(user.id, ["admin", role])
    assert users.get(user.id) == user


def test_a_single_string_is_not_a_list_of_roles(users: UserStore) -> None:
    user = users.create_user("alice", HASH)
    with pytest.raises(TypeError):
        users.set_roles(user.id, "admin")
    assert users.get(user.id) == user


def test_disable_and_enable(users: UserStore) -> None:
    user = users.create_user("alice", HASH)
    disabled = users.set_disabled(user.id, True)
    assert disabled.disabled is True
    assert users.get(user.id) == disabled
    assert users.get_by_username("ALICE") == disabled
    assert users.set_disabled(user.id, False) == user
    assert users.get(user.id) == user


def test_password_hash_change_is_timed_by_the_clock(users: UserStore, clock: ManualClock) -> None:
    user = users.create_user("alice", HASH)
    clock.advance(3600.25)
    changed = users.set_password_hash(user.id, OTHER_HASH)
    assert changed.password_hash == OTHER_HASH
    assert changed.password_changed_at == at(clock)
    assert changed.created_at == user.created_at
    assert users.get(user.id) == changed


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.set_password_hash(999, HASH),
        lambda s: s.set_roles(999, ["admin"]),
        lambda s: s.set_disabled(999, True),
    ],
    ids=["set_password_hash", "set_roles", "set_disabled"],
)
def test_changing_an_unknown_user_raises(
    users: UserStore, change: Callable[[UserStore], object]
) -> None:
    users.create_user("alice", HASH)
    with pytest.raises(UnknownUser) as info:
        change(users)
    assert info.value.user_id == 999
    assert users.count_users() == 1


@pytest.mark.parametrize("user_id", [0, -1, MAX_ID + 1, 2**63, 10**30, True])
def test_impossible_ids_are_unknown_not_errors(users: UserStore, user_id: int) -> None:
    # An ID from a URL must not overflow PostgreSQL's integer and become a 500.
    assert users.get(user_id) is None
    with pytest.raises(UnknownUser):
        users.set_roles(user_id, ["admin"])
    with pytest.raises(UnknownUser):
        users.set_disabled(user_id, True)
    assert users.list_events(user_id=user_id) == []
    assert users.count_events(user_id) == 0
    with pytest.raises(ValueError, match="user ID"):
        users.record_event(LOGIN_FAILED, user_id=user_id)


def test_the_largest_id_is_asked_for(users: UserStore) -> None:
    assert users.get(MAX_ID) is None
    users.record_event(LOGIN_FAILED, user_id=MAX_ID)
    assert users.count_events(MAX_ID) == 1


def test_the_clock_sets_created_at(open_user_store: Callable[..., UserStore]) -> None:
    clock = ManualClock(start=1_700_000_000.123456)
    users = open_user_store(clock=clock)
    user = users.create_user("alice", HASH)
    expected = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert user.created_at == expected
    stored = users.get(user.id)
    assert stored is not None
    assert stored.created_at == expected
    assert stored.created_at.utcoffset() is not None
    assert stored.created_at.tzinfo == UTC


def test_create_schema_is_idempotent(
    users: UserStore, open_user_store: Callable[..., UserStore]
) -> None:
    user = users.create_user("alice", HASH)
    users.record_event(LOGIN_SUCCEEDED, user_id=user.id)
    users.create_schema()
    users.create_schema()
    again = open_user_store()  # a second process starting on the same database
    assert again.get(user.id) == user
    assert again.count_events() == 1


# The audit log


def test_event_fields_round_trip(users: UserStore, clock: ManualClock) -> None:
    users.record_event(
        LOGIN_FAILED,
        user_id=3,
        username="alice",
        ip="2001:db8::1",
        user_agent="Mozilla/5.0",
        session_handle="0123456789abcdef0123456789abcdef",
        detail={"reason": "bad_password", "attempt": 2, "nested": {"ok": [1, None]}},
    )
    [stored] = users.list_events()
    assert isinstance(stored, AuditEvent)
    assert stored == AuditEvent(
        id=stored.id,
        at=at(clock),
        event=LOGIN_FAILED,
        user_id=3,
        username="alice",
        ip="2001:db8::1",
        user_agent="Mozilla/5.0",
        session_handle="0123456789abcdef0123456789abcdef",
        detail={"reason": "bad_password", "attempt": 2, "nested": {"ok": [1, None]}},
    )
    assert stored.at.tzinfo == UTC


def test_event_with_nothing_but_a_name(users: UserStore) -> None:
    users.record_event("maintenance")
    [stored] = users.list_events()
    assert stored.event == "maintenance"
    assert (stored.user_id, stored.username, stored.ip, stored.user_agent) == (None,) * 4
    assert stored.session_handle is None
    assert stored.detail is None


def test_events_are_listed_newest_first_and_paged(users: UserStore, clock: ManualClock) -> None:
    for i in range(5):
        users.record_event(LOGIN_SUCCEEDED, user_id=1, detail={"n": i})
        clock.advance(1)
    # Same instant: the later insert still comes first.
    users.record_event(LOGOUT, user_id=1, detail={"n": 5})
    users.record_event(LOGOUT, user_id=1, detail={"n": 6})
    clock.advance(-100)  # an event written by a host whose clock lags
    users.record_event(LOGOUT, user_id=1, detail={"n": 7})

    def numbers(events: list[AuditEvent]) -> list[int]:
        return [e.detail["n"] for e in events if e.detail is not None]

    assert numbers(users.list_events()) == [6, 5, 4, 3, 2, 1, 0, 7]
    assert numbers(users.list_events(limit=3)) == [6, 5, 4]
    assert numbers(users.list_events(offset=3, limit=3)) == [3, 2, 1]
    assert numbers(users.list_events(offset=6, limit=3)) == [0, 7]
    assert users.list_events(offset=8) == []
    assert users.count_events() == 8


def test_events_filtered_by_user(users: UserStore, clock: ManualClock) -> None:
    users.record_event(LOGIN_SUCCEEDED, user_id=1)
    clock.advance(1)
    users.record_event(LOGIN_FAILED, username="mallory")
    clock.advance(1)
    users.record_event(PASSWORD_CHANGED, user_id=2)
    clock.advance(1)
    users.record_event(LOGOUT, user_id=1)
    assert [e.event for e in users.list_events(user_id=1)] == [LOGOUT, LOGIN_SUCCEEDED]
    assert [e.event for e in users.list_events(user_id=2)] == [PASSWORD_CHANGED]
    assert users.list_events(user_id=3) == []
    assert [e.event for e in users.list_events(user_id=1, offset=1)] == [LOGIN_SUCCEEDED]
    assert (users.count_events(), users.count_events(1), users.count_events(user_id=2)) == (
        4,
        2,
        1,
    )
    assert users.count_events(3) == 0


def test_client_supplied_text_is_cut_and_cleaned(users: UserStore) -> None:
    users.record_event(
        LOGIN_FAILED,
        username="x" * 10_000 + "\x00\ud800",
        ip="1" * 500,
        user_agent="U" * 5000,
        session_handle="h" * 500,
    )
    [stored] = users.list_events()
    assert stored.user_agent == "U" * 512
    assert stored.username is not None and 0 < len(stored.username) <= 256
    assert stored.ip is not None and len(stored.ip) <= 64
    assert stored.session_handle is not None and len(stored.session_handle) <= 64
    users.record_event(LOGIN_FAILED, username="ev\x00il\ud800", user_agent="a\x00b")
    newest = users.list_events(limit=1)[0]
    assert newest.username == "evil?"
    assert newest.user_agent == "ab"


def test_secret_details_are_redacted(users: UserStore) -> None:
    users.record_event(
        LOGIN_FAILED,
        detail={"password": "hunter2hunter2", "Refresh_Token": "rt", "session_id": "sid", "n": 1},
    )
    [stored] = users.list_events()
    assert stored.detail == {
        "password": "[redacted]",
        "Refresh_Token": "[redacted]",
        "session_id": "[redacted]",
        "n": 1,
    }


def test_events_have_no_column_for_secrets_or_anything_unknown(users: UserStore) -> None:
    with pytest.raises(TypeError):
        users.record_event(LOGIN_SUCCEEDED, password="hunter2hunter2")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        users.record_event(LOGIN_SUCCEEDED, session_id="abc")  # type: ignore[call-arg]
    assert users.count_events() == 0
    columns = {c["name"] for c in inspect(users.engine).get_columns("coatcheck_audit_events")}
    assert columns == {
        "id",
        "at",
        "event",
        "user_id",
        "username",
        "ip",
        "user_agent",
        "session_handle",
        "detail",
    }
    user_columns = {c["name"] for c in inspect(users.engine).get_columns("coatcheck_users")}
    assert user_columns == {
        "id",
        "username",
        "username_key",
        "email",
        "password_hash",
        "roles",
        "created_at",
        "disabled",
        "password_changed_at",
        "email_verified",
        "notify_new_device",
    }


@pytest.mark.parametrize("name", ["", "e" * 65, None])
def test_bad_event_names_are_refused(users: UserStore, name: Any) -> None:
    with pytest.raises(ValueError):
        users.record_event(name)
    assert users.count_events() == 0


@pytest.mark.parametrize("detail", [{"when": datetime.now(UTC)}, {"x": float("nan")}, {"s": {1}}])
def test_detail_must_be_plain_json(users: UserStore, detail: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        users.record_event(LOGIN_FAILED, detail=detail)
    assert users.count_events() == 0


# Connections and configuration


def test_ping_answers(users: UserStore) -> None:
    users.ping()


def test_sqlite_file_is_created_with_its_folder_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "users.db"
    users = UserStore(f"sqlite:///{path}")
    try:
        users.create_schema()
        assert path.is_file()
        with users.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    finally:
        users.close()


def test_in_memory_sqlite_keeps_its_data() -> None:
    users = UserStore("sqlite://")
    try:
        users.create_schema()
        user = users.create_user("alice", HASH)
        assert users.get_by_username("alice") == user
    finally:
        users.close()


def test_a_plain_postgresql_url_uses_psycopg(pg_url: str) -> None:
    users = UserStore(pg_url.replace("postgresql+psycopg://", "postgresql://", 1))
    try:
        assert users.engine.dialect.driver == "psycopg"
        users.ping()
    finally:
        users.close()


def test_unreachable_postgresql_is_store_unavailable() -> None:
    users = UserStore(UNREACHABLE_PG_URL)
    try:
        with pytest.raises(StoreUnavailable):
            users.ping()
        with pytest.raises(StoreUnavailable):
            users.create_schema()
        with pytest.raises(StoreUnavailable):
            users.get(1)
        with pytest.raises(StoreUnavailable):
            users.create_user("alice", HASH)
        with pytest.raises(StoreUnavailable):
            users.record_event(LOGIN_FAILED, username="alice")
        with pytest.raises(StoreUnavailable):
            users.list_events()
    finally:
        users.close()


def test_unopenable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    users = UserStore(f"sqlite:///{tmp_path}")  # a folder, not a file
    try:
        with pytest.raises(StoreUnavailable):
            users.ping()
        with pytest.raises(StoreUnavailable):
            users.get_by_username("alice")
    finally:
        users.close()


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "not a url", "redis://127.0.0.1:6379/0"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        UserStore(url)


def test_a_refused_url_does_not_show_its_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        UserStore("mysql://root:s3cret-pw@localhost/db")
    assert "s3cret-pw" not in str(info.value)


def test_pool_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        UserStore(f"sqlite:///{tmp_path / 'users.db'}", pool_size=0)
