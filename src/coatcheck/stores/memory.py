"""``memory://``: a store in this process's memory, for tests and one-process demos."""

from __future__ import annotations

import copy
import threading
from collections.abc import Set

from ..core.clock import Clock, system_clock
from ..core.records import RecordKind, SessionRecord
from .base import SessionStore, check_record, check_save_arguments, merge


class MemorySessionStore(SessionStore):
    """Keep records in a dict guarded by a lock. Nothing survives a restart."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self._records: dict[str, SessionRecord] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> MemorySessionStore:
        return cls(clock=clock)

    def get(self, key: str) -> SessionRecord | None:
        with self._lock:
            record = self._records.get(key)
            return copy.deepcopy(record) if record is not None else None

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        check_save_arguments(changed, expect)
        check_record(record)
        new = copy.deepcopy(record)
        with self._lock:
            if changed is not None:
                stored = self._records.get(record.key)
                if stored is None:
                    return False
                if expect is not None and stored.data.get(expect[0]) != expect[1]:
                    return False
                new.data = merge(stored.data, record.data, changed)
                new.meta = merge(stored.meta, record.meta, changed_meta)
            self._records[record.key] = new
        return True

    def add(self, record: SessionRecord) -> bool:
        check_record(record)
        new = copy.deepcopy(record)
        with self._lock:
            stored = self._records.get(record.key)
            if stored is not None and stored.expires_at > self.clock():
                return False
            self._records[record.key] = new
        return True

    def count(self, kind: RecordKind) -> int:
        now = self.clock()
        with self._lock:
            return sum(1 for r in self._records.values() if r.kind == kind and r.expires_at > now)

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.last_seen_at = last_seen_at
                record.expires_at = expires_at

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        now = self.clock()
        with self._lock:
            found = [
                copy.deepcopy(r)
                for r in self._records.values()
                if r.user_id == user_id and r.expires_at > now
            ]
        return sorted(found, key=lambda r: r.created_at)

    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        now = self.clock()
        with self._lock:
            found = [copy.deepcopy(r) for r in self._records.values() if r.expires_at > now]
        return sorted(found, key=lambda r: r.last_seen_at, reverse=True)[:limit]

    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, r in self._records.items() if r.user_id == user_id and k != keep]
            for key in doomed:
                del self._records[key]
        return len(doomed)

    def purge_expired(self) -> int:
        now = self.clock()
        with self._lock:
            doomed = [k for k, r in self._records.items() if r.expires_at <= now]
            for key in doomed:
                del self._records[key]
        return len(doomed)
