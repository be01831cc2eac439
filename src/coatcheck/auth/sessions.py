"""Cookie sessions: which stored record a session ID still opens.

A record opens its session while it is a session record, has not expired by
the lifetime policy, and (for a logged-in user) was born under the user's
current revocation stamp. The stamp is read through the store's read cache,
so an authenticated read stays one cached read per record and no write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.ids import is_session_id, store_key
from ..core.records import RecordKind, SessionRecord
from .stamps import is_current

if TYPE_CHECKING:
    from .services import Services


class Sessions:
    """Open stored sessions by their ID."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def load(self, session_id: str) -> SessionRecord | None:
        """Return the live session record ``session_id`` opens, or ``None``.

        An expired record is deleted. One born before its user's last
        revocation is left for the revocation (or expiry) to delete: the
        device that revoked may be restamping it at this very moment.
        """
        if not is_session_id(session_id):
            return None
        services = self.services
        key = store_key(session_id)
        record = services.store.get(key)
        if record is None:
            return None
        if services.lifetimes.is_expired(record, services.clock()):
            services.store.delete(key)
            return None
        if record.kind is not RecordKind.SESSION or not self.is_current(record):
            return None
        return record

    def is_current(self, record: SessionRecord) -> bool:
        """Tell whether ``record`` was born under its user's current stamp."""
        if record.user_id is None:
            return True
        return is_current(record.meta, self.services.stamps.current(record.user_id))
