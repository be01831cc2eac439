"""The mail outbox in the user database (SPEC §9): rows, leases, and nothing else.

A mail is added with :meth:`OutboxStore.add` inside the transaction of the
change that causes it, so the two are kept or lost together. Senders then
*claim* due mails with a lease: one ``UPDATE`` (PostgreSQL: over rows picked
``FOR UPDATE SKIP LOCKED``) marks them ``sending`` for one owner until the
lease ends, so several workers and instances never hold one mail at once; a
sender killed mid-send lets its lease run out and another takes the mail
over. Every later change (sent, retry, failed) is conditional on still
holding the lease.

Statuses: ``pending`` (due at ``next_attempt_at``), ``sending`` (leased),
``sent``, ``failed`` (gave up) and ``dropped`` (a request that resolved to no
mail, such as a reset asked for an unknown login).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .models import OutboxRow
from .validation import check_page

if TYPE_CHECKING:
    from .store import UserStore

PENDING, SENDING, SENT, FAILED, DROPPED = "pending", "sending", "sent", "failed", "dropped"
STATUSES = (PENDING, SENDING, SENT, FAILED, DROPPED)


@dataclass(frozen=True)
class NewMail:
    """A mail to add to the outbox. ``to_addr`` ``None``: a request a resolver turns
    into a mail (or drops) when it is sent; ``payload`` is what it needs."""

    kind: str
    to_addr: str | None
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None
    user_id: int | None = None
    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OutboxMail:
    """A mail as stored, detached from the database."""

    id: int
    kind: str
    user_id: int | None
    to_addr: str | None
    subject: str | None
    text_body: str | None
    html_body: str | None
    payload: dict[str, Any] | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    sent_at: datetime | None
    last_error: str | None
    message_id: str


def _mail(row: OutboxRow) -> OutboxMail:
    return OutboxMail(
        id=row.id,
        kind=row.kind,
        user_id=row.user_id,
        to_addr=row.to_addr,
        subject=row.subject,
        text_body=row.text_body,
        html_body=row.html_body,
        payload=dict(row.payload) if row.payload is not None else None,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        sent_at=row.sent_at,
        last_error=row.last_error,
        message_id=row.message_id,
    )


class OutboxStore:
    """The outbox of :class:`~coatcheck.users.UserStore`'s database."""

    def __init__(self, users: UserStore) -> None:
        self._users = users

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._users.clock(), UTC)

    def add(self, session: Session, mail: NewMail, *, domain: str = "coatcheck.invalid") -> int:
        """Add ``mail`` in ``session``'s transaction (the change's own); return its ID."""
        now = self._now()
        row = OutboxRow(
            kind=mail.kind,
            user_id=mail.user_id,
            to_addr=mail.to_addr,
            subject=mail.subject,
            text_body=mail.text_body,
            html_body=mail.html_body,
            payload=dict(mail.payload) if mail.payload is not None else None,
            status=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            message_id=f"<{secrets.token_hex(16)}@{domain}>",
        )
        session.add(row)
        session.flush()
        return row.id

    def add_now(self, mail: NewMail, *, domain: str = "coatcheck.invalid") -> int:
        """Add ``mail`` in a transaction of its own; return its ID."""
        with self._users.transaction() as session:
            return self.add(session, mail, domain=domain)

    def claim(self, owner: str, *, lease: float, limit: int = 10) -> list[OutboxMail]:
        """Lease up to ``limit`` due mails to ``owner`` for ``lease`` seconds; return them.

        Due: pending and past ``next_attempt_at``, or sending under a lease that ran out
        (its sender died). Oldest first.
        """
        now = self._now()
        due = or_(
            (OutboxRow.status == PENDING) & (OutboxRow.next_attempt_at <= now),
            (OutboxRow.status == SENDING) & (OutboxRow.lease_until < now),
        )
        pick = select(OutboxRow.id).where(due).order_by(OutboxRow.id).limit(limit)
        claim_token = f"{owner[:40]}/{secrets.token_hex(8)}"
        with self._users.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            ids = list(session.scalars(pick))
            if not ids:
                return []
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), due)
                .values(
                    status=SENDING,
                    lease_owner=claim_token,
                    lease_until=now + timedelta(seconds=lease),
                )
            )
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.lease_owner == claim_token).order_by(OutboxRow.id)
            )
            return [_mail(row) for row in rows]

    def _finish(self, mail: OutboxMail, **values: Any) -> bool:
        """Change a leased mail if its lease is still ``mail``'s; tell whether it was."""
        query = (
            update(OutboxRow)
            .where(
                OutboxRow.id == mail.id,
                OutboxRow.status == SENDING,
                OutboxRow.lease_owner == mail.lease_owner,
            )
            .values(**values)
        )
        with self._users.transaction() as session:
            return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def mark_sent(self, mail: OutboxMail, *, keep_bodies: bool = True) -> bool:
        """Record that the SMTP server accepted ``mail``; ``keep_bodies=False`` forgets its
        text (the subject stays), so that no one-time link outlives its sending here."""
        cleared: dict[str, Any] = {} if keep_bodies else {"text_body": None, "html_body": None}
        return self._finish(
            mail,
            status=SENT,
            sent_at=self._now(),
            attempts=mail.attempts + 1,
            lease_owner=None,
            lease_until=None,
            last_error=None,
            payload=None,
            **cleared,
        )

    def mark_retry(self, mail: OutboxMail, error: str, retry_at: datetime) -> bool:
        """Record a failed attempt; the mail is due again at ``retry_at``."""
        return self._finish(
            mail,
            status=PENDING,
            attempts=mail.attempts + 1,
            next_attempt_at=retry_at,
            lease_owner=None,
            lease_until=None,
            last_error=error[:1000],
        )

    def mark_failed(self, mail: OutboxMail, error: str) -> bool:
        """Give up on ``mail`` (retried too long); it stays visible as failed."""
        return self._finish(
            mail,
            status=FAILED,
            attempts=mail.attempts + 1,
            lease_owner=None,
            lease_until=None,
            last_error=error[:1000],
            payload=None,
        )

    def mark_dropped(self, mail: OutboxMail, reason: str) -> bool:
        """Record that a request resolved to no mail (nothing is sent)."""
        return self._finish(
            mail,
            status=DROPPED,
            lease_owner=None,
            lease_until=None,
            last_error=reason[:1000],
            payload=None,
        )

    def resolve(
        self,
        session: Session,
        mail: OutboxMail,
        *,
        to_addr: str,
        subject: str,
        text_body: str,
        html_body: str,
        user_id: int | None,
    ) -> bool:
        """Turn a leased request into a mail, in ``session``'s transaction (the one that
        makes what the mail carries, e.g. a reset token). The payload goes."""
        query = (
            update(OutboxRow)
            .where(
                OutboxRow.id == mail.id,
                OutboxRow.status == SENDING,
                OutboxRow.lease_owner == mail.lease_owner,
            )
            .values(
                to_addr=to_addr,
                subject=subject,
                text_body=text_body,
                html_body=html_body,
                user_id=user_id,
                payload=None,
            )
        )
        return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def get(self, mail_id: int) -> OutboxMail | None:
        """Return the mail with this ID, or ``None``."""
        with self._users.transaction() as session:
            row = session.get(OutboxRow, mail_id)
            return _mail(row) if row is not None else None

    def page(
        self, *, offset: int = 0, limit: int = 50, status: str | None = None
    ) -> list[OutboxMail]:
        """Return a page of mails, newest first (only ``status``, if given)."""
        check_page(offset, limit)
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).offset(offset).limit(limit)
        if status is not None:
            query = query.where(OutboxRow.status == status)
        with self._users.transaction() as session:
            return [_mail(row) for row in session.scalars(query)]

    def count(self, status: str | None = None) -> int:
        """Return how many mails there are (with ``status``, if given)."""
        query = select(func.count()).select_from(OutboxRow)
        if status is not None:
            query = query.where(OutboxRow.status == status)
        with self._users.transaction() as session:
            return session.scalar(query) or 0

    def counts(self) -> dict[str, int]:
        """Return how many mails have each status (every status, zeros included)."""
        query = select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
        found = dict.fromkeys(STATUSES, 0)
        with self._users.transaction() as session:
            for status, count in session.execute(query):
                found[status] = count
        return found
