"""Tables of the user store, and the plain values handed out to callers.

The SQLAlchemy rows never leave :mod:`coatcheck.users.store`: callers get the
frozen :class:`User` and :class:`AuditEvent`, which are detached from any
database session and safe to keep, compare and pass between threads.

No table has a column for a password, a session ID or a token. Users keep a
password *hash*; audit events name a session by its public handle only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Audit event names for the events of the specification. Event names are free
#: text; these are the ones coatcheck itself writes.
LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
LOGOUT = "logout"
SESSION_REVOKED = "session_revoked"
ALL_SESSIONS_REVOKED = "all_sessions_revoked"
PASSWORD_CHANGED = "password_changed"  # noqa: S105 (an event name)
ROLES_CHANGED = "roles_changed"
REMEMBER_THEFT = "remember_token_theft"
TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 (an event name)
USER_DISABLED = "user_disabled"
USER_ENABLED = "user_enabled"
USER_CREATED = "user_created"
FACTOR_ADDED = "factor_added"
FACTOR_REMOVED = "factor_removed"
FACTOR_RENAMED = "factor_renamed"
FACTORS_RESET = "factors_reset"
RECOVERY_CODES_ISSUED = "recovery_codes_issued"
RECOVERY_CODE_USED = "recovery_code_used"
SECOND_FACTOR_FAILED = "second_factor_failed"
STEP_UP = "step_up"
PASSKEY_LOGIN = "passkey_login"
CREDENTIAL_CLONED = "webauthn_credential_cloned"
PASSWORD_RESET_REQUESTED = "password_reset_requested"  # noqa: S105 (an event name)
PASSWORD_RESET = "password_reset"  # noqa: S105 (an event name)
EMAIL_VERIFIED = "email_verified"
EMAIL_CHANGED = "email_changed"
NEW_DEVICE = "new_device_login"

#: Constraint and index names that stay stable across databases, so that
#: Alembic migrations can refer to them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Longest user agent kept in an audit event; the rest is cut off.
USER_AGENT_MAX = 512


class UTCDateTime(TypeDecorator[datetime]):
    """Store timezone-aware datetimes, and always read them back in UTC.

    SQLite has no time zones: values are kept there as naive UTC and made
    aware again when read. Naive values are refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the user store's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    """One account. ``username_key`` (the casefolded username) is unique."""

    __tablename__ = "coatcheck_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Mail the user when they log in from a browser and OS not seen before.
    notify_new_device: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    def to_user(self) -> User:
        """Return the detached, immutable value of this row."""
        return User(
            id=self.id,
            username=self.username,
            email=self.email,
            password_hash=self.password_hash,
            roles=tuple(self.roles),
            created_at=self.created_at,
            disabled=self.disabled,
            password_changed_at=self.password_changed_at,
            email_verified=self.email_verified,
            notify_new_device=self.notify_new_device,
        )


class OutboxRow(Base):
    """One mail to send (SPEC §9): written in the transaction of the change that causes
    it, delivered by a background sender that leases it."""

    __tablename__ = "coatcheck_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: What the mail is (its template): ``password_reset``, ``verify_email``, ``notice``…
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: ``None`` until a request to resolve (a reset asked for by login) is resolved.
    to_addr: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    #: What a mail still to be resolved needs (a reset request's login); cleared after.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    #: ``pending``, ``sending`` (leased), ``sent``, ``failed`` or ``dropped``.
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The Message-ID header: one per mail, the same on every attempt.
    message_id: Mapped[str] = mapped_column(String(128))


class EmailTokenRow(Base):
    """A one-time link sent by mail, kept as the SHA-256 of its secret."""

    __tablename__ = "coatcheck_email_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    #: ``reset`` (a new password) or ``verify`` (an address to confirm).
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The address a ``verify`` token confirms.
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KnownDeviceRow(Base):
    """A browser and OS a user has logged in with (for "new device" notices)."""

    __tablename__ = "coatcheck_known_devices"
    __table_args__ = (UniqueConstraint("user_id", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(128))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEventRow(Base):
    """One security-relevant event. ``user_id`` has no foreign key on purpose:
    the log outlives the accounts it mentions."""

    __tablename__ = "coatcheck_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    username: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))
    session_handle: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    def to_event(self) -> AuditEvent:
        """Return the detached, immutable value of this row."""
        return AuditEvent(
            id=self.id,
            at=self.at,
            event=self.event,
            user_id=self.user_id,
            username=self.username,
            ip=self.ip,
            user_agent=self.user_agent,
            session_handle=self.session_handle,
            detail=dict(self.detail) if self.detail is not None else None,
        )


class FactorRow(Base):
    """One second factor of a user: a TOTP secret (sealed) or a WebAuthn credential."""

    __tablename__ = "coatcheck_factors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    #: Counts only once confirmed (a TOTP code entered; a WebAuthn credential at once).
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A WebAuthn credential that logs in on its own (discoverable, user verified).
    passkey: Mapped[bool] = mapped_column(Boolean, default=False)
    #: TOTP: the secret, sealed with a key derived from SECRET_KEY.
    secret: Mapped[str | None] = mapped_column(Text)
    #: TOTP: the last time step accepted (each is accepted once).
    last_step: Mapped[int | None] = mapped_column(Integer)
    #: WebAuthn: the credential ID (base64url), unique.
    credential_id: Mapped[str | None] = mapped_column(String(1400), unique=True)
    public_key: Mapped[str | None] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    transports: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_state: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def to_factor(self) -> Factor:
        """Return the detached, immutable value of this row."""
        return Factor(
            id=self.id,
            user_id=self.user_id,
            type=self.type,
            name=self.name,
            confirmed=self.confirmed,
            passkey=self.passkey,
            secret=self.secret,
            last_step=self.last_step,
            credential_id=self.credential_id,
            public_key=self.public_key,
            sign_count=self.sign_count,
            transports=tuple(self.transports or ()),
            backup_eligible=self.backup_eligible,
            backup_state=self.backup_state,
            created_at=self.created_at,
            last_used_at=self.last_used_at,
        )


class RecoveryCodeRow(Base):
    """One single-use recovery code, kept as its SHA-256 (the codes carry 80 random bits)."""

    __tablename__ = "coatcheck_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class Factor:
    """A second factor as stored, detached from the database.

    The sealed TOTP secret and the public key are left out of ``repr()``.
    """

    id: int
    user_id: int
    #: ``totp`` or ``webauthn``.
    type: str
    name: str
    confirmed: bool
    passkey: bool
    secret: str | None = field(repr=False)
    last_step: int | None
    credential_id: str | None
    public_key: str | None = field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    backup_state: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class User:
    """An account as stored, detached from the database.

    The password hash is left out of ``repr()`` so that it cannot end up in a
    log line by accident.

    :param roles: sorted, without duplicates.
    :param password_changed_at: when the password hash was last replaced, or
        ``None`` if never since the account was created. Tokens issued before
        it are no longer honoured.
    """

    id: int
    username: str
    email: str | None
    password_hash: str = field(repr=False)
    roles: tuple[str, ...]
    created_at: datetime
    disabled: bool
    password_changed_at: datetime | None = None
    email_verified: bool = False
    notify_new_device: bool = True

    def has_role(self, role: str) -> bool:
        """Return whether the user holds ``role``."""
        return role in self.roles


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An audit log entry, detached from the database.

    :param session_handle: the session's public handle, never its ID.
    """

    id: int
    at: datetime
    event: str
    user_id: int | None
    username: str | None
    ip: str | None
    user_agent: str | None
    session_handle: str | None
    detail: dict[str, Any] | None
