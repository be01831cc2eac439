"""One-time mail links in the user database: kept as the SHA-256 of their secret.

Rules (what a token is good for, and how long) are :mod:`coatcheck.auth.emails`'
work; here only rows move. Spending a token is one conditional ``UPDATE``,
so a link clicked twice at once works once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import EmailTokenRow

if TYPE_CHECKING:
    from .store import UserStore


@dataclass(frozen=True)
class EmailToken:
    """A mail token as stored (never its secret)."""

    id: int
    user_id: int
    purpose: str
    email: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


def token_hash(secret: str) -> str:
    """Return what is stored of a token's secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _token(row: EmailTokenRow) -> EmailToken:
    return EmailToken(
        id=row.id,
        user_id=row.user_id,
        purpose=row.purpose,
        email=row.email,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class EmailTokenStore:
    """The mail tokens of :class:`~coatcheck.users.UserStore`'s users."""

    def __init__(self, users: UserStore) -> None:
        self._users = users

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._users.clock(), UTC)

    def add(
        self,
        session: Session,
        *,
        user_id: int,
        purpose: str,
        secret: str,
        lifetime: float,
        email: str | None = None,
    ) -> EmailToken:
        """Add a token in ``session``'s transaction (the one of its mail)."""
        now = self._now()
        row = EmailTokenRow(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(secret),
            email=email,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
        )
        session.add(row)
        session.flush()
        return _token(row)

    def find(self, secret: str, purpose: str) -> EmailToken | None:
        """Return the token for ``purpose`` with this secret, spent or not, or ``None``."""
        query = select(EmailTokenRow).where(
            EmailTokenRow.token_hash == token_hash(secret), EmailTokenRow.purpose == purpose
        )
        with self._users.transaction() as session:
            row = session.scalars(query).one_or_none()
            return _token(row) if row is not None else None

    def spend(self, session: Session, token: EmailToken) -> bool:
        """Spend ``token`` in ``session``'s transaction; ``False`` if it was spent already."""
        query = (
            update(EmailTokenRow)
            .where(EmailTokenRow.id == token.id, EmailTokenRow.used_at.is_(None))
            .values(used_at=self._now())
        )
        return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def spend_all(self, session: Session, user_id: int, purpose: str) -> None:
        """Spend every unspent token of the user for ``purpose`` (a newer one replaces them)."""
        session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user_id,
                EmailTokenRow.purpose == purpose,
                EmailTokenRow.used_at.is_(None),
            )
            .values(used_at=self._now())
        )

    def issued_since(self, session: Session, user_id: int, purpose: str, since: float) -> int:
        """Return how many tokens for ``purpose`` the user was sent since ``since``."""
        query = (
            select(func.count())
            .select_from(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user_id,
                EmailTokenRow.purpose == purpose,
                EmailTokenRow.created_at >= datetime.fromtimestamp(since, UTC),
            )
        )
        return session.scalar(query) or 0
