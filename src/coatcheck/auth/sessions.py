"""Cookie sessions: which stored record a session ID still opens, and what a request writes.

A record opens its session while it is a session record, has not expired by
the lifetime policy, and (for a logged-in user) was born under the user's
current revocation stamp. The stamp is read through the store's read cache,
so an authenticated read stays one cached read per record and no write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import StoreUnavailable
from ..core.ids import is_session_id, new_session_id, store_key
from ..core.records import RecordKind, SessionRecord
from ..stores.base import merge
from .stamps import is_current, stamp_key, stamp_value

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("coatcheck.session")
#: Session meta key naming the store key of the remember-me series that logged it in.
SERIES_KEY = "remember_key"
#: Session (and token family) meta key keeping the user's ID with its type.
USER_ID = "uid"


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
        # The session and its user's stamp, read together (one freshness check).
        record, stamp = services.store.get_pair(key, stamp_key)
        if record is None:
            return None
        if services.lifetimes.is_expired(record, services.clock()):
            services.store.delete(key)
            return None
        if record.kind is not RecordKind.SESSION:
            return None
        if record.user_id is not None and not is_current(record.meta, stamp_value(stamp)):
            return None
        return record

    def is_current(self, record: SessionRecord) -> bool:
        """Tell whether ``record`` was born under its user's current stamp."""
        if record.user_id is None:
            return True
        return is_current(record.meta, self.services.stamps.read(record.user_id))

    def persist(self, write: SessionWrite) -> SessionOutcome:
        """Write what the request did to its session; return what the cookie must do.

        A request that changed nothing writes nothing but a last-seen touch at
        most once per touch interval. A change saves only the keys it made.
        A rotation starts from the record as stored *now*, so a revocation,
        demotion or disable made while the request ran stands.
        """
        services = self.services
        store, lifetimes, now = services.store, services.lifetimes, services.clock()
        record = write.record
        reissue = (
            write.reissue_id
            if write.reissue_id is not None
            and record is not None
            and not (write.rotate or write.destroy)
            else None
        )
        if write.destroy or (write.modified and write.empty):
            if record is not None:
                store.delete(record.key)
            return SessionOutcome(delete=write.cookie_sent)
        if record is None:
            if not write.modified:  # nothing to store; a stale or garbage cookie goes
                return SessionOutcome(delete=write.cookie_sent)
            return self._store_new(write, now, None)
        if write.rotate:
            current = store.get(record.key)
            if current is None or lifetimes.is_expired(current, now):
                if not write.user_changed:  # a login needs no previous session
                    return SessionOutcome(delete=True)
                current = None
            outcome = self._store_new(write, now, current)
            store.delete(record.key)
            return outcome
        if write.modified:
            record.data = write.serialize(write.changed)
            record.user_id, record.meta = write.user_id, write.meta
            lifetimes.seen(record, now)
            if not store.save(record, write.changed, changed_meta=write.changed_meta):
                return SessionOutcome(delete=True)  # revoked while this request ran
        else:
            self.touch(record, now)
        return SessionOutcome(set_id=reissue, record=record)

    def touch(self, record: SessionRecord, now: float | None = None) -> None:
        """Record that a request read the session: at most once per touch interval.

        All a read-only request writes, and the whole of :meth:`persist` for
        one (the hot path calls it directly).
        """
        services = self.services
        lifetimes = services.lifetimes
        now = services.clock() if now is None else now
        if lifetimes.needs_touch(record, now):
            lifetimes.seen(record, now)
            try:
                services.store.touch(record.key, record.last_seen_at, record.expires_at)
            except StoreUnavailable as exc:
                # The read succeeded and nothing is lost; the next request will tell.
                log.warning("could not record last-seen: %s", exc)

    def _store_new(
        self, write: SessionWrite, now: float, base: SessionRecord | None
    ) -> SessionOutcome:
        """Store the session under a new ID, on top of ``base`` (its stored record) if any."""
        session_id = write.next_id or new_session_id()
        user_id, data, meta = write.user_id, write.serialize(None), write.meta
        if write.record is None:
            meta = {**write.client_meta, **meta}
        if base is not None:
            data = merge(base.data, write.serialize(write.changed), write.changed)
            meta = merge(base.meta, meta, write.changed_meta)
            if not write.user_changed:
                user_id = base.user_id
        lifetimes = self.services.lifetimes
        record = lifetimes.new_record(
            store_key(session_id), now, user_id=user_id, data=data, meta=meta
        )
        record.handle = write.handle
        if write.record is not None and not write.fresh:
            record.created_at = write.record.created_at  # rotation keeps the session's age
            lifetimes.seen(record, now)
        store = self.services.store
        store.save(record)
        series = meta.get(SERIES_KEY)
        if isinstance(series, str) and store.get(series) is None:
            # The series was ended (logout, revocation, theft) while this request
            # ran: its end looked for its sessions before this one was stored.
            store.delete(record.key)
            return SessionOutcome(delete=True)
        return SessionOutcome(set_id=session_id, record=record)


@dataclass
class SessionWrite:
    """What one request did to its session: everything :meth:`Sessions.persist` needs.

    Values are already serialized (JSON text): ``serialize(keys)`` returns the
    current values of ``keys``, or of every key for ``None``.
    """

    #: The record the request loaded (``None``: no stored session).
    record: SessionRecord | None
    user_id: str | None
    meta: dict[str, Any]
    changed: set[str]
    changed_meta: frozenset[str]
    serialize: Callable[[set[str] | None], dict[str, str]]
    handle: str
    #: The request carried a session cookie (valid or not).
    cookie_sent: bool = False
    modified: bool = False
    #: Nothing is left worth storing (no data, no user).
    empty: bool = False
    destroy: bool = False
    rotate: bool = False
    #: With ``rotate``: start the absolute timeout anew (a login).
    fresh: bool = False
    #: The request logged in or out.
    user_changed: bool = False
    #: What a new session keeps about its client.
    client_meta: dict[str, str] = field(default_factory=dict)
    #: Store a new or rotated session under this ID (default: a new random one).
    next_id: str | None = None
    #: Answer with this ID of an already stored session (a remember-me replay).
    reissue_id: str | None = None


@dataclass(frozen=True)
class SessionOutcome:
    """What the response must do with the session cookie after :meth:`Sessions.persist`."""

    #: Set the cookie to this session ID.
    set_id: str | None = None
    #: Delete the cookie.
    delete: bool = False
    #: The record as stored now.
    record: SessionRecord | None = None
