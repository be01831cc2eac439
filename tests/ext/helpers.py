"""Small helpers for the Flask-layer tests."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from coatcheck.core.clock import Clock
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.stores.base import SessionStore

BASE = "https://localhost"


def https_client(app: Flask, *, use_cookies: bool = True) -> FlaskClient:
    """Return a test client that speaks HTTPS, so Secure cookies round-trip.

    With ``use_cookies=False`` there is no cookie jar and a ``Cookie`` header
    given to a request is sent as it is (the jar would replace it).
    """
    return HttpsClient(app, app.response_class, use_cookies=use_cookies)


class HttpsClient(FlaskClient):
    """A Flask test client whose requests go to https://localhost by default."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        if args and isinstance(args[0], str):
            kwargs.setdefault("base_url", BASE)
        return super().open(*args, **kwargs)


@dataclass
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str] = field(default_factory=dict)


def set_cookies(response: TestResponse) -> list[SetCookie]:
    """Parse every Set-Cookie header of ``response``."""
    parsed = []
    for header in response.headers.getlist("Set-Cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, val = part.partition("=")
            attributes[key.lower()] = val
        parsed.append(SetCookie(name, value, attributes))
    return parsed


class CountingStore(SessionStore):
    """A real store, with a count of the writes that reach it."""

    def __init__(self, inner: SessionStore) -> None:
        super().__init__(clock=inner.clock)
        self.inner = inner
        self.reads = 0
        self.writes: list[str] = []

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = ...) -> SessionStore:  # type: ignore[assignment]
        raise NotImplementedError

    def get(self, key: str) -> SessionRecord | None:
        self.reads += 1
        return self.inner.get(key)

    def save(
        self,
        record: SessionRecord,
        changed: Set[str] | None = None,
        *,
        changed_meta: Set[str] = frozenset(),
        expect: tuple[str, str] | None = None,
    ) -> bool:
        self.writes.append("save")
        return self.inner.save(record, changed, changed_meta=changed_meta, expect=expect)

    def add(self, record: SessionRecord) -> bool:
        self.writes.append("add")
        return self.inner.add(record)

    def count(self, kind: RecordKind) -> int:
        return self.inner.count(kind)

    def touch(self, key: str, last_seen_at: float, expires_at: float) -> None:
        self.writes.append("touch")
        self.inner.touch(key, last_seen_at, expires_at)

    def delete(self, key: str) -> None:
        self.writes.append("delete")
        self.inner.delete(key)

    def list_by_user(self, user_id: str) -> list[SessionRecord]:
        return self.inner.list_by_user(user_id)

    def list_all(self, limit: int = 1000) -> list[SessionRecord]:
        return self.inner.list_all(limit)

    def delete_by_user(self, user_id: str, *, keep: str | None = None) -> int:
        self.writes.append("delete_by_user")
        return self.inner.delete_by_user(user_id, keep=keep)

    def purge_expired(self) -> int:
        return self.inner.purge_expired()

    def close(self) -> None:
        self.inner.close()


def count_records(store: SessionStore) -> int:
    """Return how many session records ``store`` holds, asking its backend directly."""
    from coatcheck.auth.secret import RECORD_NAME
    from coatcheck.core.records import RecordKind
    from coatcheck.stores.memory import MemorySessionStore
    from coatcheck.stores.redis import RedisSessionStore
    from coatcheck.stores.sqlite import SQLiteSessionStore

    if isinstance(store, CountingStore):
        return count_records(store.inner)
    if isinstance(store, MemorySessionStore):
        return len(store._records)
    if isinstance(store, SQLiteSessionStore):
        with store._db() as conn:
            count: int = conn.execute("SELECT count(*) FROM coatcheck_sessions").fetchone()[0]
            return count
    if isinstance(store, RedisSessionStore):
        # Not the signing key's fingerprint, which a shared store holds from the start.
        fingerprint = f"{store.prefix}s:{RecordKind.STAMP.key(RECORD_NAME)}"
        return sum(
            1 for k in store.client.scan_iter(match=f"{store.prefix}s:*") if k != fingerprint
        )
    raise TypeError(store)
