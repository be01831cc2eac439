"""The one contract every session store fulfils.

A store moves records; it makes no decisions. IDs, hashing, expiry rules and
rotation live above it (``coatcheck.core`` and ``coatcheck.ext``). A
third-party store is one subclass of :class:`SessionStore` registered with
:func:`register_store`.

Contract, checked for every store by the suite that :mod:`coatcheck.testing`
ships (:class:`~coatcheck.testing.SessionStoreContract`):

- Records are addressed by ``record.key`` (the SHA-256 of the session ID).
- :meth:`~SessionStore.save` with ``changed=None`` writes the whole record,
  creating it if needed. With ``changed`` (a set of data keys) it merges into
  the stored record atomically: each named key is set from ``record.data`` or
  deleted when absent there; other stored keys are left as they are. ``meta``
  merges the same way, but only the keys named in ``changed_meta``; the
  scalar fields (user, times) are written. So two requests that change
  different keys never undo each other's work. A partial save never
  re-creates a record that is gone (revoked or expired) and then returns
  ``False``.
- A partial save with ``expect=(name, text)`` is a compare-and-set: it applies
  only if the stored data holds exactly ``text`` under ``name``, and returns
  ``False`` otherwise (used to rotate remember-me tokens exactly once).
- :meth:`~SessionStore.add` creates a record only if no unexpired record
  has its key, atomically, also across processes (used to start a
  revocation stamp exactly once). A record whose ``expires_at`` has passed
  by the store's clock does not count as there. An added record with a user
  is indexed under that user exactly as a saved one.
- Every record keeps its :class:`~coatcheck.core.records.RecordKind`
  through every write; :meth:`~SessionStore.count` counts the unexpired
  records of one kind, and is cheap enough to call at every metrics scrape.
- A :attr:`~coatcheck.core.records.RecordKind.STAMP` record has no user:
  saving or adding one with a ``user_id`` is refused with :exc:`ValueError`
  (:func:`check_record`), so that "delete every record of this user" can
  never delete the stamp that revokes them.
- A store may forget a record once ``expires_at`` has passed, but the
  decision that a session has ended is taken above the store.
- Every failure to reach the backing service raises
  :class:`~coatcheck.core.errors.StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Set
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..core.clock import Clock, system_clock
from ..core.errors import ConfigurationError
from ..core.records import RecordKind, SessionRecord

_Raw = TypeVar("_Raw")

# scheme -> "module:Class", imported only when a URL asks for it.
_REGISTRY: dict[str, str] = {
    "memory": "coatcheck.stores.memory:MemorySessionStore",
    "sqlite": "coatcheck.stores.sqlite:SQLiteSessionStore",
    "redis": "coatcheck.stores.redis:RedisSessionStore",
    "rediss": "coatcheck.stores.redis:RedisSessionStore",
    "redis+cluster": "coatcheck.stores.redis:RedisSessionStore",
    "rediss+cluster": "coatcheck.stores.redis:RedisSessionStore",
    "redis+sentinel": "coatcheck.stores.redis:RedisSessionStore",
}


class SessionStore(ABC):
    """Keep session records somewhere, addressed by their key."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, *, clock: Clock = system_clock) -> SessionStore:
        """Return a store configured by ``url``."""

    @abstractmethod
    def get(self, key: str) -> SessionRecord | None:
        """Return the record stored under ``key``, or ``None``."""

    def get_pair(
        self, key: str, then: Callable[[SessionRecord], str | None]
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """Return the record under ``key`` and the one under ``then(record)``.

        For reads that go together (a session and its user's revocation stamp):
        a store may answer both from one check of its read cache's freshness,
        as of the moment of the first read. ``then`` returning ``None`` reads no
        second record. The default is two :meth:`get` calls.
        """
        first = self.get(key)
        if first is None:
            return None, None
        second_key = then(first)
        return first, (self.get(second_key) if second_key is not None else None)

    @abstractmethod
    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        """Write ``record``, whole or only the ``changed`` data and ``changed_meta`` keys.

        Return ``False`` when a partial save found no record to update, or
        when ``expect`` did not match what is stored.
        """

    @abstractmethod
    def add(self, record: SessionRecord) -> bool:
        """Create ``record`` unless an unexpired record has its key; tell whether it did."""

    @abstractmethod
    def count(self, kind: RecordKind) -> int:
        """Return how many unexpired records of ``kind`` the store holds."""

    @abstractmethod
    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        """Refresh the last-seen time and expiry of an existing record."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget the record stored under ``key``; no error if there is none."""

    @abstractmethod
    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        """Return the unexpired records of one user, oldest first."""

    @abstractmethod
    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        """Return up to ``limit`` unexpired records of anyone (for administrators)."""

    @abstractmethod
    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every record of one user except ``keep``; return how many."""

    @abstractmethod
    def purge_expired(self) -> int:
        """Delete every record whose ``expires_at`` has passed; return how many."""

    def ping(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Raise :class:`StoreUnavailable` if the backing service is down."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections. The store may be used again afterwards."""


def register_store(scheme: str, target: str) -> None:
    """Make ``scheme://`` URLs open ``target`` (``"package.module:Class"``)."""
    _REGISTRY[scheme] = target


def open_store(url: str, *, clock: Clock = system_clock) -> SessionStore:
    """Return the store that ``url`` names, e.g. ``sqlite:///instance/sessions.db``."""
    scheme = urlsplit(url).scheme.lower()
    target = _REGISTRY.get(scheme)
    if target is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown session store scheme {scheme!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    store: SessionStore = cls.from_url(url, clock=clock)
    return store


class DecodedRecords:
    """Decoded records kept beside a read cache's raw entries: one decode per entry.

    A read cache answers a hit with the very same raw object (a Redis hash's
    fields, a SQLite row), so the record decoded from it is kept beside it and
    each read gets a copy of its own to change, instead of decoding JSON again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[str, tuple[object, SessionRecord]] = {}

    def record(
        self, key: str, raw: _Raw, decode: Callable[[str, _Raw], SessionRecord]
    ) -> SessionRecord:
        """Return a copy of the record ``raw`` holds, decoding it only when new."""
        kept = self._kept.get(key)
        if kept is not None and kept[0] is raw:
            record = kept[1]
        else:
            record = decode(key, raw)
            if len(self._kept) >= self.limit:
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del self._kept[next(iter(self._kept))]  # the oldest entry
            self._kept[key] = (raw, record)
        return dataclasses.replace(record, data=dict(record.data), meta=dict(record.meta))

    def forget(self, key: str | None) -> None:
        """Drop what was decoded for ``key`` (every key for ``None``): its raw entry went.

        Called whenever the read cache drops an entry, so that decoded records
        live no longer than the entries they came from (a dropped entry's
        record can never be served again: a new read returns a new object).
        """
        if key is None:
            self._kept.clear()
        else:
            self._kept.pop(key, None)


def check_save_arguments(changed: Set[str] | None, expect: tuple[str, str] | None) -> None:
    """Refuse ``expect`` without ``changed``: a compare-and-set is a partial save."""
    if expect is not None and changed is None:
        raise ValueError("expect= needs changed=: a compare-and-set is a partial save")


def check_record(record: SessionRecord) -> None:
    """Refuse a revocation stamp that names a user: stamps are never indexed by user."""
    if record.kind is RecordKind.STAMP and record.user_id is not None:
        raise ValueError("a revocation stamp has no user_id: its key already names the user")


#: The ``"kind"`` that meta held before records had a :class:`RecordKind`;
#: any other value (or none) was a cookie session.
LEGACY_KINDS: dict[str, RecordKind] = {
    "remember": RecordKind.REMEMBER,
    "token": RecordKind.TOKEN_FAMILY,
}


def legacy_kind(meta_kind: object) -> RecordKind:
    """Return the kind of a record written before kinds were stored, from its meta."""
    if isinstance(meta_kind, str):
        return LEGACY_KINDS.get(meta_kind, RecordKind.SESSION)
    return RecordKind.SESSION


def merge(stored: dict[str, Any], new: dict[str, Any], changed: Set[str]) -> dict[str, Any]:
    """Return ``stored`` with the ``changed`` keys taken from ``new`` (deleted if absent)."""
    merged = dict(stored)
    for name in changed:
        if name in new:
            merged[name] = new[name]
        else:
            merged.pop(name, None)
    return merged
