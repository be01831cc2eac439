"""Second factors and recovery codes in the user store's database.

Only stored values move here: sealing TOTP secrets, checking codes and
WebAuthn assertions is :mod:`coatcheck.auth.factors`' work. Every change that
must happen once (a TOTP time step, a recovery code, a sign counter) is a
single conditional ``UPDATE`` whose row count says who won, so two workers
racing with one code never both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .models import Factor, FactorRow, RecoveryCodeRow
from .validation import is_valid_id

if TYPE_CHECKING:
    from .store import UserStore

#: Longest factor name kept.
MAX_FACTOR_NAME = 64
TOTP = "totp"
WEBAUTHN = "webauthn"


class DuplicateCredential(ValueError):
    """A WebAuthn credential ID that is registered already."""


def clean_factor_name(name: str) -> str:
    """Return ``name`` stripped; raise :class:`ValueError` if empty, too long or unprintable."""
    name = name.strip()
    if not name or len(name) > MAX_FACTOR_NAME or not name.isprintable():
        raise ValueError(f"a name must be 1 to {MAX_FACTOR_NAME} printable characters")
    return name


class FactorStore:
    """The factors and recovery codes of :class:`~coatcheck.users.UserStore`'s users."""

    def __init__(self, users: UserStore) -> None:
        self._users = users

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._users.clock(), UTC)

    def add_totp(self, user_id: int, name: str, sealed_secret: str) -> Factor:
        """Add an unconfirmed TOTP factor; drop the user's earlier unconfirmed ones."""
        with self._users.transaction() as session:
            session.execute(
                delete(FactorRow).where(
                    FactorRow.user_id == user_id,
                    FactorRow.type == TOTP,
                    FactorRow.confirmed.is_(False),
                )
            )
            row = FactorRow(
                user_id=user_id,
                type=TOTP,
                name=clean_factor_name(name),
                confirmed=False,
                passkey=False,
                secret=sealed_secret,
                sign_count=0,
                backup_eligible=False,
                backup_state=False,
                created_at=self._now(),
            )
            session.add(row)
            session.flush()
            return row.to_factor()

    def add_webauthn(
        self,
        user_id: int,
        name: str,
        *,
        passkey: bool,
        credential_id: str,
        public_key: str,
        sign_count: int,
        transports: Sequence[str],
        backup_eligible: bool,
        backup_state: bool,
    ) -> Factor:
        """Add a WebAuthn credential (confirmed: the browser's attestation proved it).

        :raise DuplicateCredential: if the credential ID is registered already.
        """
        row = FactorRow(
            user_id=user_id,
            type=WEBAUTHN,
            name=clean_factor_name(name),
            confirmed=True,
            passkey=passkey,
            credential_id=credential_id,
            public_key=public_key,
            sign_count=sign_count,
            transports=list(transports),
            backup_eligible=backup_eligible,
            backup_state=backup_state,
            created_at=self._now(),
        )
        try:
            with self._users.transaction() as session:
                session.add(row)
                session.flush()
                return row.to_factor()
        except IntegrityError as exc:
            raise DuplicateCredential("this credential is registered already") from exc

    def of_user(self, user_id: int, *, confirmed: bool = True) -> list[Factor]:
        """Return a user's factors, oldest first (only confirmed ones by default)."""
        if not is_valid_id(user_id):
            return []
        query = select(FactorRow).where(FactorRow.user_id == user_id).order_by(FactorRow.id)
        if confirmed:
            query = query.where(FactorRow.confirmed.is_(True))
        with self._users.transaction() as session:
            return [row.to_factor() for row in session.scalars(query)]

    def get(self, user_id: int, factor_id: int) -> Factor | None:
        """Return the user's factor with this ID (confirmed or not), or ``None``."""
        if not is_valid_id(user_id) or not is_valid_id(factor_id):
            return None
        with self._users.transaction() as session:
            row = session.get(FactorRow, factor_id)
            return row.to_factor() if row is not None and row.user_id == user_id else None

    def by_credential_id(self, credential_id: str) -> Factor | None:
        """Return the WebAuthn factor with this credential ID, or ``None``."""
        query = select(FactorRow).where(FactorRow.credential_id == credential_id)
        with self._users.transaction() as session:
            row = session.scalars(query).one_or_none()
            return row.to_factor() if row is not None else None

    def use_totp_step(self, factor_id: int, step: int, *, confirm: bool = False) -> bool:
        """Accept time step ``step`` of a TOTP factor once; ``confirm`` it too.

        Return ``False`` when that step or a later one was accepted already.
        """
        values: dict[str, object] = {"last_step": step, "last_used_at": self._now()}
        if confirm:
            values["confirmed"] = True
        query = (
            update(FactorRow)
            .where(
                FactorRow.id == factor_id,
                FactorRow.type == TOTP,
                or_(FactorRow.last_step.is_(None), FactorRow.last_step < step),
            )
            .values(**values)
        )
        with self._users.transaction() as session:
            return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def use_webauthn(
        self, factor_id: int, old_count: int, new_count: int, backup_state: bool
    ) -> bool:
        """Record a use of a WebAuthn credential if its counter is still ``old_count``."""
        query = (
            update(FactorRow)
            .where(FactorRow.id == factor_id, FactorRow.sign_count == old_count)
            .values(sign_count=new_count, backup_state=backup_state, last_used_at=self._now())
        )
        with self._users.transaction() as session:
            return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def rename(self, user_id: int, factor_id: int, name: str) -> Factor | None:
        """Rename a confirmed factor of the user; ``None`` if there is none with this ID."""
        name = clean_factor_name(name)
        with self._users.transaction() as session:
            row = session.get(FactorRow, factor_id) if is_valid_id(factor_id) else None
            if row is None or row.user_id != user_id or not row.confirmed:
                return None
            row.name = name
            session.flush()
            return row.to_factor()

    def remove(self, user_id: int, factor_id: int) -> Factor | None:
        """Remove a factor of the user and return it; ``None`` if there is none with this ID.

        When it was the user's last confirmed factor, their recovery codes go too.
        """
        with self._users.transaction() as session:
            row = session.get(FactorRow, factor_id) if is_valid_id(factor_id) else None
            if row is None or row.user_id != user_id:
                return None
            factor = row.to_factor()
            session.delete(row)
            session.flush()
            left = session.scalar(
                select(func.count())
                .select_from(FactorRow)
                .where(FactorRow.user_id == user_id, FactorRow.confirmed.is_(True))
            )
            if not left:
                session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            return factor

    def remove_all(self, user_id: int) -> int:
        """Remove every factor and recovery code of the user; return how many factors went."""
        with self._users.transaction() as session:
            removed = session.execute(delete(FactorRow).where(FactorRow.user_id == user_id))
            session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            return removed.rowcount  # type: ignore[attr-defined, no-any-return]

    def replace_recovery_codes(self, user_id: int, code_hashes: Iterable[str]) -> None:
        """Replace the user's recovery codes (the old set dies) with these hashes."""
        now = self._now()
        with self._users.transaction() as session:
            session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            session.add_all(
                RecoveryCodeRow(user_id=user_id, code_hash=h, created_at=now) for h in code_hashes
            )

    def use_recovery_code(self, user_id: int, code_hash: str) -> bool:
        """Spend the user's unused recovery code with this hash; ``False`` if there is none."""
        query = (
            update(RecoveryCodeRow)
            .where(
                RecoveryCodeRow.user_id == user_id,
                RecoveryCodeRow.code_hash == code_hash,
                RecoveryCodeRow.used_at.is_(None),
            )
            .values(used_at=self._now())
        )
        with self._users.transaction() as session:
            return session.execute(query).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def recovery_codes_left(self, user_id: int) -> int:
        """Return how many unused recovery codes the user has."""
        if not is_valid_id(user_id):
            return 0
        query = (
            select(func.count())
            .select_from(RecoveryCodeRow)
            .where(RecoveryCodeRow.user_id == user_id, RecoveryCodeRow.used_at.is_(None))
        )
        with self._users.transaction() as session:
            return session.scalar(query) or 0

    def kinds(self, user_ids: Iterable[int]) -> dict[int, list[str]]:
        """Return, per user, the kinds of confirmed factors they have (``totp``, ``webauthn``,
        ``passkey``), sorted, in one query."""
        ids = [i for i in user_ids if is_valid_id(i)]
        if not ids:
            return {}
        query = select(FactorRow.user_id, FactorRow.type, FactorRow.passkey).where(
            FactorRow.user_id.in_(ids), FactorRow.confirmed.is_(True)
        )
        found: dict[int, set[str]] = {}
        with self._users.transaction() as session:
            for user_id, kind, passkey in session.execute(query):
                found.setdefault(user_id, set()).add("passkey" if passkey else kind)
        return {user_id: sorted(kinds) for user_id, kinds in found.items()}
