"""Revocation stamps: one number per user that every session, series and family is born under.

Disabling a user, changing their roles or password, logging them out
everywhere: each moves the user's stamp forward. Whatever was born under an
older stamp is dead at its next use, on every instance, even if it was
created by a login that overlapped the revocation and so was never deleted.

The order of reads makes a racing login lose: a login reads the stamp
*before* it reads the user (:meth:`Accounts.authenticate` reads the user once
more after the stamp). A revocation changes the user first and moves the
stamp after. So a login that saw the old user state was born under the old
stamp, and one born under the new stamp saw the new state.

The stamp is a record in the session store (kind ``stamp``, keyed by the hash
of the user ID, never indexed under the user), read through the store's read
caches like a session: an authenticated read costs no extra round trip.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from ..core.clock import Clock
from ..core.errors import StoreUnavailable
from ..core.ids import new_handle
from ..core.records import RecordKind, SessionRecord
from ..stores.base import SessionStore

#: The meta key under which a session, series or family keeps its birth stamp.
STAMP = "stamp"
#: How long a stamp record is kept after it last moved: for good, in practice. A
#: stamp that vanished all the same (evicted, lost in a failover) makes whatever
#: was born under a stamp dead, never alive again: see :func:`is_current`.
LIFETIME = 10 * 365 * 86400.0
_FIELD = "n"
_ATTEMPTS = 100


class Stamps:
    """Read and move the users' revocation stamps."""

    def __init__(self, store: SessionStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.lifetime = LIFETIME

    def read(self, user_id: str | int) -> int | None:
        """Return the user's stamp, or ``None`` if there is no stamp record."""
        return stamp_value(self.store.get(RecordKind.STAMP.key(str(user_id))))

    def alive(self, record: SessionRecord) -> tuple[SessionRecord | None, int | None]:
        """Return ``record`` if it lives under its user's stamp (and that stamp).

        The stamp is read first, so what the caller reads of the user next
        cannot be older than it. A record that looks born before a revocation
        is read once more: a change of roles may have carried it over to the
        new stamp between the two reads. ``None``: the record is dead.
        """
        stamp = self.read(record.user_id or "")
        if is_current(record.meta, stamp):
            return record, stamp
        again = self.store.get(record.key)
        return (again if again is not None and is_current(again.meta, stamp) else None), stamp

    def current(self, user_id: str | int) -> int:
        """Return the stamp a login of the user is born under now (0 if it never moved)."""
        return self.read(user_id) or 0

    def bump(self, user_id: str | int) -> tuple[int, int]:
        """Move the user's stamp forward; return the value it moved from and the new one.

        Records born under the first value were current just before the move,
        and nothing that happened in between can hide: the move is a
        compare-and-set on the first value.

        The new value is above the old one and above the time in milliseconds,
        so that a stamp whose record expired and was forgotten never comes back
        lower than one that something alive was born under.
        """
        key = RecordKind.STAMP.key(str(user_id))
        for _ in range(_ATTEMPTS):
            now = self.clock()
            floor = math.floor(now * 1000)
            stored = self.store.get(key)
            if stored is not None and _FIELD not in stored.data:
                # Damaged (no number to compare and set): start it again, higher.
                self.store.delete(key)
                continue
            if stored is None:
                record = SessionRecord(
                    key=key,
                    handle=new_handle(),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.lifetime,
                    data={_FIELD: json.dumps(floor)},
                    kind=RecordKind.STAMP,
                )
                if self.store.add(record):
                    return 0, floor
                continue
            previous = _value(stored)
            value = max(previous + 1, floor)
            update = dataclasses.replace(
                stored,
                last_seen_at=now,
                expires_at=now + self.lifetime,
                data={_FIELD: json.dumps(value)},
            )
            if self.store.save(update, {_FIELD}, expect=(_FIELD, stored.data.get(_FIELD, ""))):
                return previous, value
        raise StoreUnavailable("the revocation stamp could not be moved (too much contention)")


def stamp_key(record: SessionRecord) -> str | None:
    """Return the store key of the stamp of ``record``'s user (``None``: no user)."""
    return RecordKind.STAMP.key(record.user_id) if record.user_id is not None else None


def stamp_value(record: SessionRecord | None) -> int | None:
    """Return the stamp a stamp record holds, or ``None`` for no record."""
    return _value(record) if record is not None else None


def born_under(meta: Mapping[str, Any]) -> int:
    """Return the stamp a record was born under (0 for records from before stamps)."""
    value = meta.get(STAMP, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def is_current(meta: Mapping[str, Any], stamp: int | None) -> bool:
    """Tell whether a record born as ``meta`` says is still alive under ``stamp``.

    With no stamp record (``None``) only records born before any stamp live: a
    stamp that was lost must not bring back what it had killed.
    """
    born = born_under(meta)
    return born == 0 if stamp is None else born >= stamp


def _value(record: SessionRecord) -> int:
    try:
        value = json.loads(record.data.get(_FIELD, "0"))
    except ValueError:
        return 0
    return value if isinstance(value, int) else 0
