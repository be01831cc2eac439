"""A user's devices: cookie sessions, remember-me series and token families.

Listing shows what still works (not expired, not born before the user's last
revocation). Revoking a session also ends the series that logged it in and
every session that series logged in, so a revoked device cannot log itself
back in.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.records import RecordKind, SessionRecord
from ..users import models as events
from .assurance import Assurance
from .client import NO_CLIENT, Client
from .sessions import SERIES_KEY
from .stamps import STAMP, is_current

if TYPE_CHECKING:
    from .services import Services

#: What the API calls each kind of device.
_KIND_NAMES = {
    RecordKind.SESSION: "session",
    RecordKind.REMEMBER: "remember",
    RecordKind.TOKEN_FAMILY: "token",
}


@dataclass(frozen=True)
class Device:
    """The device a request acts from: its session, series and token family, if any."""

    session_key: str | None = None
    series_key: str | None = None
    family_key: str | None = None

    def store_keys(self) -> set[str]:
        """Return the store keys of this device's records."""
        return {k for k in (self.session_key, self.series_key, self.family_key) if k is not None}


@dataclass(frozen=True)
class DeviceSession:
    """One of a user's devices, as shown to the user or an administrator."""

    handle: str
    kind: str
    user_id: str | None
    created_at: float
    last_seen_at: float
    expires_at: float
    ip: str | None
    user_agent: str | None
    current: bool
    #: How sure the login of this device was, and when it was last checked.
    assurance: Assurance

    def to_json(self) -> dict[str, Any]:
        """Return the API form of this device (times in ISO 8601, UTC)."""
        return {
            "handle": self.handle,
            "kind": self.kind,
            "created_at": iso_time(self.created_at),
            "last_seen_at": iso_time(self.last_seen_at),
            "expires_at": iso_time(self.expires_at),
            "ip": self.ip,
            "user_agent": self.user_agent,
            "current": self.current,
            **assurance_json(self.assurance),
        }


def assurance_json(assurance: Assurance) -> dict[str, Any]:
    """Return the API form of an assurance: ``aal``, ``amr``, ``authenticated_at``."""
    return {
        "aal": assurance.aal,
        "amr": list(assurance.amr),
        "authenticated_at": iso_time(assurance.authenticated_at),
    }


def iso_time(timestamp: float) -> str:
    """Return a Unix time as ISO 8601 in UTC (``2026-11-22T01:02:03Z``)."""
    return _iso_second(int(timestamp))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # A session's times change once a minute at most: /api/me formats the same ones again.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


class Devices:
    """List and revoke users' devices."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _alive(self, user_id: str) -> list[SessionRecord]:
        services = self.services
        now, lifetimes = services.clock(), services.lifetimes
        stamp = services.stamps.read(user_id)
        return [
            r
            for r in services.store.list_by_user(user_id)
            if r.kind in _KIND_NAMES
            and is_current(r.meta, stamp)
            and not (r.kind is RecordKind.SESSION and lifetimes.is_expired(r, now))
        ]

    def of_user(self, user_id: str | int, current_handle: str | None = None) -> list[DeviceSession]:
        """Return a user's live devices, oldest first."""
        return [_device(r, current_handle) for r in _visible(self._alive(str(user_id)))]

    def count(self, user_id: str | int) -> int:
        """Return how many live records a user has."""
        return len(self._alive(str(user_id)))

    def everyone(self, limit: int = 1000, current_handle: str | None = None) -> list[DeviceSession]:
        """Return up to ``limit`` live devices of all users, most recently seen first.

        What is no device (stamps, the signing key's fingerprint) or is dead by
        its user's stamp does not count towards ``limit``: the store is asked
        for more until ``limit`` devices are found or it has no more.
        """
        store, asked = self.services.store, max(limit, 1)
        stamps: dict[str, int | None] = {}
        while True:
            found = store.list_all(asked)
            records = []
            for r in found:
                if not r.user_id or r.kind not in _KIND_NAMES:
                    continue
                if r.user_id not in stamps:
                    stamps[r.user_id] = self.services.stamps.read(r.user_id)
                if is_current(r.meta, stamps[r.user_id]):
                    records.append(r)
            devices = _visible(records)
            if len(devices) >= limit or len(found) < asked:
                return [_device(r, current_handle) for r in devices[:limit]]
            asked *= 2

    def revoke(self, user_id: str | int, handle: str, *, client: Client = NO_CLIENT) -> bool:
        """End one device of a user by its handle; ``False`` if the user has none such."""
        owner = str(user_id)
        for record in self.services.store.list_by_user(owner):
            if record.handle == handle and record.kind in _KIND_NAMES:
                self._end(record)
                self.services.audit(
                    events.SESSION_REVOKED, client=client, user_id=owner, detail={"handle": handle}
                )
                return True
        return False

    def revoke_others(
        self, user_id: str | int, keep: Device, *, client: Client = NO_CLIENT
    ) -> tuple[int, int | None]:
        """End every device of a user but ``keep``; return how many, and the stamp ``keep``
        now lives under (``None``: not kept, the user was disabled meanwhile)."""
        owner = str(user_id)
        revoked = len([r for r in self._alive(owner) if r.key not in keep.store_keys()])
        stamp = self.revoke_everything(owner, keep=keep)
        self.services.audit(
            events.ALL_SESSIONS_REVOKED, client=client, user_id=owner, detail={"revoked": revoked}
        )
        return revoked, stamp

    def revoke_all(self, user_id: str | int, *, client: Client = NO_CLIENT) -> int:
        """End every device of a user (an administrator's act); return how many."""
        owner = str(user_id)
        revoked = self.count(owner)
        self.revoke_everything(owner)
        self.services.audit(
            events.ALL_SESSIONS_REVOKED, client=client, user_id=owner, detail={"revoked": revoked}
        )
        return revoked

    def carry_over(self, user_id: str, roles: list[str]) -> int:
        """Move the user's stamp and carry their live records over to it with ``roles``.

        For a change of roles: the devices stay logged in with the new roles,
        while a login that raced the change, and read the old roles, was born
        under the old stamp and is dead at its first use. Records already dead
        stay dead. Return the new stamp.
        """
        store = self.services.store
        previous, stamp = self.services.stamps.bump(user_id)
        alive = {
            record.key
            for record in store.list_by_user(user_id)
            if record.kind in _KIND_NAMES and is_current(record.meta, previous)
        }
        self._carry(alive, stamp, roles)
        return stamp

    def revoke_everything(self, user_id: str, *, keep: Device | None = None) -> int | None:
        """Move the user's stamp, let ``keep`` live on under it, delete the rest.

        Whatever a racing login creates after this was born under the old stamp
        and is dead at its first use, on every instance. The kept device is
        carried over only after the user is read again, *after* the stamp
        moved: a disable that raced this leaves nothing kept, and roles changed
        meanwhile are the ones it keeps. Return the stamp the kept device now
        lives under, or ``None`` when nothing is kept.
        """
        services = self.services
        _, stamp = services.stamps.bump(user_id)
        kept: set[str] = set()
        if keep is not None:
            user = services.load_user(user_id)
            if user is not None and not getattr(user, "disabled", False):
                kept = keep.store_keys()
                self._carry(kept, stamp, sorted(set(user.roles)))
        store = services.store
        for record in store.list_by_user(user_id):
            if record.key not in kept:
                store.delete(record.key)
        return stamp if kept else None

    def update_meta(self, user_id: str | int, values: dict[str, Any]) -> None:
        """Write ``values`` into the meta of every live session and token family of the
        user (what they show of the user, such as the address; no privilege)."""
        store = self.services.store
        for record in self._alive(str(user_id)):
            if record.kind is RecordKind.REMEMBER:
                continue
            record.meta.update(values)
            store.save(record, set(), changed_meta=set(values))

    def _carry(self, keys: set[str], stamp: int, roles: list[str]) -> None:
        """Move the records ``keys`` to ``stamp`` with ``roles`` (a series keeps no roles)."""
        store = self.services.store
        for key in keys:
            record = store.get(key)
            if record is None or record.kind not in _KIND_NAMES:
                continue
            changed = {STAMP}
            record.meta[STAMP] = stamp
            if record.kind is not RecordKind.REMEMBER:
                record.meta["roles"] = roles
                changed.add("roles")
            store.save(record, set(), changed_meta=changed)

    def _end(self, record: SessionRecord) -> None:
        store = self.services.store
        if record.kind is RecordKind.REMEMBER:
            self.services.remember.forget(None, key=record.key)
            return
        store.delete(record.key)
        series = record.meta.get(SERIES_KEY)
        if isinstance(series, str):
            self.services.remember.forget(None, key=series)


def _device(record: SessionRecord, current_handle: str | None) -> DeviceSession:
    return DeviceSession(
        handle=record.handle,
        kind=_KIND_NAMES.get(record.kind, record.kind.value),
        user_id=record.user_id,
        created_at=record.created_at,
        last_seen_at=record.last_seen_at,
        expires_at=record.expires_at,
        ip=record.meta.get("ip"),
        user_agent=record.meta.get("user_agent"),
        current=record.handle == current_handle,
        assurance=Assurance.from_meta(record.meta, record.created_at),
    )


def _visible(records: list[SessionRecord]) -> list[SessionRecord]:
    """Leave out remember-me series that belong to a listed session."""
    linked = {r.meta.get(SERIES_KEY) for r in records if r.kind is RecordKind.SESSION}
    return [r for r in records if not (r.kind is RecordKind.REMEMBER and r.key in linked)]
