"""The session record, and the lifetime rules that apply to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .ids import new_handle, store_key


class RecordKind(StrEnum):
    """What a stored record is; its value is also the purpose its key is hashed with.

    A secret of one kind can therefore never address a record of another.
    """

    #: A cookie session (the key hashes the session ID).
    SESSION = "session"
    #: A remember-me series (the key hashes the series ID).
    REMEMBER = "remember"
    #: A token family: one device's refresh-token chain (the key hashes its handle).
    TOKEN_FAMILY = "token-family"  # noqa: S105 - a record kind
    #: A user's revocation stamp (the key hashes the user ID); never indexed by user.
    STAMP = "stamp"

    def key(self, secret: str) -> str:
        """Return the store key of the record of this kind addressed by ``secret``."""
        return store_key(secret, purpose=self.value)


@dataclass
class SessionRecord:
    """What a store keeps for one session.

    ``data`` maps each key of the application's session to its value already
    serialized as JSON text, so a store only ever moves strings. ``meta`` holds
    coatcheck's own JSON-compatible bookkeeping (client address, user agent...).
    """

    #: The SHA-256 of the session ID; never the ID itself.
    key: str
    #: Public, random, unrelated to the ID: used to list and revoke.
    handle: str
    created_at: float
    last_seen_at: float
    #: When the store may forget the record: the earlier of idle and absolute expiry.
    expires_at: float
    user_id: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: What the record is; stores keep it and :meth:`SessionStore.count` counts by it.
    kind: RecordKind = RecordKind.SESSION


@dataclass(frozen=True)
class LifetimePolicy:
    """When a session expires and when its last-seen time is refreshed."""

    #: Seconds without a request after which a session ends.
    idle_timeout: float = 30 * 60
    #: Seconds after creation after which a session ends, however active.
    absolute_timeout: float = 12 * 60 * 60
    #: A read-only request refreshes last-seen at most this often (seconds).
    touch_interval: float = 60

    def new_record(self, key: str, now: float, **fields: Any) -> SessionRecord:
        """Return a fresh record created at ``now``."""
        return SessionRecord(
            key=key,
            handle=new_handle(),
            created_at=now,
            last_seen_at=now,
            expires_at=self.expires_at(now, now),
            **fields,
        )

    def expires_at(self, created_at: float, last_seen_at: float) -> float:
        """Return when a session created and last seen at these times ends."""
        return min(last_seen_at + self.idle_timeout, created_at + self.absolute_timeout)

    def is_expired(self, record: SessionRecord, now: float) -> bool:
        """Tell whether the record has ended by the current policy."""
        return now >= self.expires_at(record.created_at, record.last_seen_at)

    def needs_touch(self, record: SessionRecord, now: float) -> bool:
        """Tell whether a read-only request should refresh last-seen."""
        return now - record.last_seen_at >= self.touch_interval

    def seen(self, record: SessionRecord, now: float) -> None:
        """Mark the record as seen at ``now`` (in memory only)."""
        record.last_seen_at = now
        record.expires_at = self.expires_at(record.created_at, now)
