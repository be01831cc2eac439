"""The user store and audit log: SQLAlchemy 2 on SQLite or PostgreSQL.

``sqlite:///path`` (one file in WAL mode, the default of the service) and
``postgresql+psycopg://…`` (several processes and machines) are supported. A
bare ``postgresql://`` or ``postgres://`` URL uses psycopg 3.

A database that cannot be reached raises
:class:`~coatcheck.core.errors.StoreUnavailable` from every method, so that the
web layer can answer 503 instead of a traceback.

The tables are made and changed by the Alembic migrations of
:mod:`coatcheck.users.migrations` (:meth:`UserStore.upgrade_schema`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ..core import sqlite
from ..core.clock import system_clock
from ..core.errors import CoatcheckError, ConfigurationError, StoreUnavailable, UsernameTaken
from .email_tokens import EmailTokenStore
from .factors import FactorStore
from .models import AuditEvent, AuditEventRow, KnownDeviceRow, User, UserRow
from .outbox import NewMail, OutboxStore
from .validation import (
    MAX_ID,
    InvalidEmail,
    check_event_name,
    check_page,
    check_password_hash,
    clean_audit_fields,
    clean_detail,
    is_valid_id,
    is_valid_username,
    normalize_roles,
    username_key,
    validate_email,
    validate_username,
)

__all__ = ["InvalidEmail", "UnknownUser", "UserStore"]

# pg_advisory_xact_lock key serialising migrations across processes. The key of
# the create_all days, so that old and new workers of a rolling start wait for
# each other too.
_SCHEMA_LOCK_KEY = 0x636F6174  # "coat"
_PG_CONNECT_TIMEOUT_S = 10
# Connections older than this are replaced, before a firewall or PgBouncer drops them.
_PG_POOL_RECYCLE_S = 1800


class UnknownUser(CoatcheckError):
    """No user has this ID."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"no user has the ID {user_id}")
        self.user_id = user_id


@contextlib.contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """Turn a failure to reach the database into :class:`StoreUnavailable`."""
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeoutError) as exc:
        # The driver's first line names host, port and reason (never the password).
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreUnavailable(
            f"the user database cannot be reached: {reason[0] if reason else type(exc).__name__}"
        ) from exc


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    sqlite.prepare(dbapi_connection)


def _create_engine(url: str, pool_size: int, timeout: float | None = None) -> Engine:
    """Return an engine for a SQLite or PostgreSQL ``url``.

    :raise ConfigurationError: for a malformed URL or another database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL: {exc}") from exc
    if pool_size < 1:
        raise ConfigurationError("pool_size must be at least 1")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _create_sqlite_engine(parsed)
    if backend in {"postgresql", "postgres"}:
        return _create_postgresql_engine(parsed, pool_size, timeout)
    shown = parsed.render_as_string(hide_password=True)
    raise ConfigurationError(
        f"the user store supports sqlite:///path and postgresql+psycopg://…, not {shown!r}"
    )


def _create_sqlite_engine(url: URL) -> Engine:
    database = url.database
    connect_args = {"check_same_thread": False, "timeout": sqlite.BUSY_TIMEOUT_S}
    if not database or database == ":memory:":
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        if not url.query.get("uri"):
            sqlite.create_private(database)  # password hashes and the audit log: private
        engine = create_engine(url, connect_args=connect_args)
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _create_postgresql_engine(url: URL, pool_size: int, timeout: float | None) -> Engine:
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
    given = url.query.get("options", "")
    if timeout is not None and isinstance(given, str) and "statement_timeout" not in given:
        ours = f"-c statement_timeout={max(1, round(timeout * 1000))}"
        connect_args["options"] = f"{given} {ours}".strip()
    engine = create_engine(
        url,
        # With a timeout, bound_engine checks connections itself (no retry after a timeout).
        pool_pre_ping=timeout is None,
        pool_recycle=_PG_POOL_RECYCLE_S,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
    )
    if timeout is not None and url.get_driver_name() == "psycopg":
        from .postgres import bound_engine

        bound_engine(engine, timeout, connect="connect_timeout" not in url.query)
    return engine


class UserStore:
    """Keep users and the audit log in a SQL database.

    :param url: ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a
        PostgreSQL URL. The folder of a SQLite file is created if missing.
    :param clock: the source of every stored time (Unix seconds).
    :param pool_size: connections kept open to PostgreSQL; as many again
        (``max_overflow``) may be opened under load (the extension passes
        ``COATCHECK_DATABASE_POOL_SIZE``). The pool belongs to
        the process: under `coatcheck serve` each worker has its own, so PostgreSQL may
        see up to workers × (pool_size + max_overflow) connections, here
        workers × 2 × pool_size. Keep that below its ``max_connections``.
        Pooled connections are checked before use and replaced after 30
        minutes.
    :param timeout: PostgreSQL only: seconds to wait for a connection or an
        answer before :class:`~coatcheck.core.errors.StoreUnavailable`
        (``COATCHECK_DATABASE_TIMEOUT``), on the client and as the
        ``statement_timeout``; ``None`` waits as psycopg does. Migrations are
        not bounded.
    :raise ConfigurationError: for an unsupported or malformed URL, or an
        invalid pool size.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = system_clock,
        pool_size: int = 5,
        timeout: float | None = None,
    ) -> None:
        self.clock = clock
        self.engine = _create_engine(url, pool_size, timeout)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @functools.cached_property
    def factors(self) -> FactorStore:
        """Return the users' second factors and recovery codes."""
        return FactorStore(self)

    @functools.cached_property
    def email_tokens(self) -> EmailTokenStore:
        """Return the one-time mail links."""
        return EmailTokenStore(self)

    @functools.cached_property
    def outbox(self) -> OutboxStore:
        """Return the mail outbox."""
        return OutboxStore(self)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session whose work is committed on success, rolled back on error."""
        with _unavailable_as_error(), self._sessions.begin() as session:
            yield session

    def _row(self, session: Session, user_id: int) -> UserRow:
        row = session.get(UserRow, user_id) if is_valid_id(user_id) else None
        if row is None:
            raise UnknownUser(user_id)
        return row

    def create_schema(self) -> None:
        """Bring the tables up to date: what runs on first use.

        The same as :meth:`upgrade_schema` to the newest revision. Tables made
        by ``metadata.create_all`` before migrations existed are adopted as
        revision 0001, not made again. Safe to call at every start, from
        several processes at once.
        """
        self.upgrade_schema()

    def upgrade_schema(self, revision: str = "head") -> None:
        """Apply the migrations the database lacks, up to ``revision``.

        One process migrates at a time (PostgreSQL: an advisory lock; SQLite:
        the write lock); the others wait, then find nothing left to do.

        :raise ConfigurationError: if the database is at a revision this
            version does not know, or holds only some of the tables.
        """
        from . import migrations

        with self._schema_transaction() as connection:
            migrations.upgrade(connection, revision)

    def schema_revision(self) -> str | None:
        """Return the revision the database is at, or ``None`` before any."""
        from . import migrations

        with _unavailable_as_error(), self.engine.connect() as connection:
            return migrations.current_revision(connection)

    def head_revision(self) -> str | None:
        """Return the newest revision this version of coatcheck knows."""
        from . import migrations

        return migrations.head_revision()

    @contextlib.contextmanager
    def _schema_transaction(self) -> Iterator[Connection]:
        """Yield a connection in a transaction that no other process migrates meanwhile."""
        with _unavailable_as_error(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Waiting for another process's migration may take long: no timeout.
                dbapi_connection = connection.connection.dbapi_connection
                from .postgres import rebound, unbounded

                unbounded(dbapi_connection)
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                try:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
                    )
                    yield connection
                finally:
                    rebound(dbapi_connection)
                return
            # Take SQLite's write lock now rather than at the first write, so
            # that a second process waits here instead of racing to CREATE TABLE.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection

    def ping(self) -> None:
        """Check that the database answers.

        :raise StoreUnavailable: if it does not.
        """
        with _unavailable_as_error(), self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def create_user(
        self,
        username: str,
        password_hash: str,
        *,
        email: str | None = None,
        roles: Iterable[str] = (),
    ) -> User:
        """Add an account and return it.

        :raise InvalidUsername: if the username breaks the rules.
        :raise InvalidEmail: if the email is not an address.
        :raise UsernameTaken: if the username exists, in any case.
        :raise ValueError: for an invalid role or a value that is not a hash.
        """
        row = UserRow(
            username=validate_username(username),
            username_key=username_key(username),
            email=validate_email(email),
            password_hash=check_password_hash(password_hash),
            roles=list(normalize_roles(roles)),
            created_at=self._now(),
            disabled=False,
        )
        try:
            with self.transaction() as session:
                session.add(row)
                session.flush()
                return row.to_user()
        except IntegrityError as exc:
            # Also reached when another process inserted the same name meanwhile.
            raise UsernameTaken(f"the username {username!r} is taken") from exc

    def get(self, user_id: int) -> User | None:
        """Return the user with this ID, or ``None``."""
        if not is_valid_id(user_id):
            return None
        with self.transaction() as session:
            row = session.get(UserRow, user_id)
            return None if row is None else row.to_user()

    def get_by_username(self, username: str) -> User | None:
        """Return the user with this username in any case, or ``None``."""
        if not is_valid_username(username):
            return None
        query = select(UserRow).where(UserRow.username_key == username_key(username))
        with self.transaction() as session:
            row = session.scalars(query).one_or_none()
            return None if row is None else row.to_user()

    def list_users(self, *, offset: int = 0, limit: int = 50) -> list[User]:
        """Return a page of users in order of ID."""
        check_page(offset, limit)
        query = select(UserRow).order_by(UserRow.id).offset(offset).limit(limit)
        with self.transaction() as session:
            return [row.to_user() for row in session.scalars(query)]

    def count_users(self) -> int:
        """Return the number of users."""
        with self.transaction() as session:
            return session.scalar(select(func.count()).select_from(UserRow)) or 0

    def get_by_email(self, email: str) -> User | None:
        """Return the user with this address in any case (the oldest, if several), or ``None``."""
        if not isinstance(email, str) or not email or len(email) > 254:
            return None
        query = (
            select(UserRow)
            .where(func.lower(UserRow.email) == email.lower())
            .order_by(UserRow.id)
            .limit(1)
        )
        with self.transaction() as session:
            row = session.scalars(query).one_or_none()
            return None if row is None else row.to_user()

    def set_email_in(
        self, session: Session, user_id: int, email: str | None, *, verified: bool
    ) -> User:
        """Set a user's address and whether it is verified, in ``session``'s transaction.

        :raise InvalidEmail: if ``email`` is not an address.
        """
        row = self._row(session, user_id)
        row.email = validate_email(email)
        row.email_verified = bool(verified and email)
        session.flush()
        return row.to_user()

    def set_password_hash_in(self, session: Session, user_id: int, password_hash: str) -> User:
        """:meth:`set_password_hash` in ``session``'s transaction (with what must go with it)."""
        check_password_hash(password_hash)
        row = self._row(session, user_id)
        row.password_hash = password_hash
        row.password_changed_at = self._now()
        session.flush()
        return row.to_user()

    def set_notify_new_device(self, user_id: int, notify: bool) -> User:
        """Turn the user's "new device" notices on or off."""
        with self.transaction() as session:
            row = self._row(session, user_id)
            row.notify_new_device = bool(notify)
            session.flush()
            return row.to_user()

    def known_devices(self, user_id: int) -> int:
        """Return how many browsers and OSes the user has logged in with."""
        query = (
            select(func.count())
            .select_from(KnownDeviceRow)
            .where(KnownDeviceRow.user_id == user_id)
        )
        with self.transaction() as session:
            return session.scalar(query) or 0

    def note_device(self, user_id: int, device: str) -> bool:
        """Record that the user logged in with ``device`` (a browser and OS); return
        whether it is new for them."""
        try:
            with self.transaction() as session:
                session.add(
                    KnownDeviceRow(user_id=user_id, device=device[:128], first_seen_at=self._now())
                )
                session.flush()
        except IntegrityError:
            return False
        return True

    def set_password_hash(self, user_id: int, password_hash: str) -> User:
        """Replace a user's password hash and return the updated user.

        ``password_changed_at`` becomes now.

        :raise UnknownUser: if no user has this ID.
        :raise ValueError: if ``password_hash`` is not an encoded hash.
        """
        check_password_hash(password_hash)
        with self.transaction() as session:
            row = self._row(session, user_id)
            row.password_hash = password_hash
            row.password_changed_at = self._now()
            session.flush()
            return row.to_user()

    def set_roles(self, user_id: int, roles: Iterable[str]) -> User:
        """Replace a user's roles and return the updated user.

        :raise UnknownUser: if no user has this ID.
        :raise ValueError: for an invalid role.
        """
        normalized = list(normalize_roles(roles))
        with self.transaction() as session:
            row = self._row(session, user_id)
            row.roles = normalized
            session.flush()
            return row.to_user()

    def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disable or re-enable a user and return the updated user.

        :raise UnknownUser: if no user has this ID.
        """
        with self.transaction() as session:
            row = self._row(session, user_id)
            row.disabled = bool(disabled)
            session.flush()
            return row.to_user()

    def record_event(
        self,
        event: str,
        *,
        user_id: int | None = None,
        username: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        session_handle: str | None = None,
        detail: dict[str, Any] | None = None,
        mail: NewMail | None = None,
    ) -> None:
        """Append an event to the audit log (and ``mail`` to the outbox, in one transaction).

        Client-supplied text is cut to size (the user agent to 512 characters).
        Values of ``detail`` under secret names (``password``, ``token``,
        ``session_id``…) are replaced by ``"[redacted]"``. Pass a session's
        public handle, never its ID.

        :param event: one of the event constants, or a name of your own (1 to
            64 characters).
        :raise ValueError: for an empty or overlong event name, or an
            impossible user ID.
        :raise TypeError: if ``detail`` is not plain JSON.
        """
        if user_id is not None and not is_valid_id(user_id):
            raise ValueError(f"a user ID is an integer from 1 to {MAX_ID}")
        row = AuditEventRow(
            at=self._now(),
            event=check_event_name(event),
            user_id=user_id,
            detail=clean_detail(detail),
            **clean_audit_fields(username, ip, user_agent, session_handle),
        )
        with self.transaction() as session:
            session.add(row)
            if mail is not None:
                self.outbox.add(session, mail)

    def list_events(
        self, *, user_id: int | None = None, offset: int = 0, limit: int = 50
    ) -> list[AuditEvent]:
        """Return a page of audit events, newest first, optionally of one user."""
        check_page(offset, limit)
        if user_id is not None and not is_valid_id(user_id):
            return []
        query = select(AuditEventRow)
        if user_id is not None:
            query = query.where(AuditEventRow.user_id == user_id)
        query = query.order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc())
        with self.transaction() as session:
            rows = session.scalars(query.offset(offset).limit(limit))
            return [row.to_event() for row in rows]

    def count_events(self, user_id: int | None = None) -> int:
        """Return the number of audit events, optionally of one user."""
        if user_id is not None and not is_valid_id(user_id):
            return 0
        query = select(func.count()).select_from(AuditEventRow)
        if user_id is not None:
            query = query.where(AuditEventRow.user_id == user_id)
        with self.transaction() as session:
            return session.scalar(query) or 0
