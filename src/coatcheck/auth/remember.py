"""Remember-me series: a long-lived cookie that logs a device back in.

The cookie holds a series ID and a secret, signed. The series is one record
(kind ``remember``, keyed by the hash of the series ID, indexed under its
user) that follows the rotation protocol of :mod:`.rotation`: each use hands
out a new secret *and* the ID of the new session it logs in with, so that a
use of the previous cookie within the grace window gets that same session,
never one of its own. Whatever the series logged in is ended with it: by
logout, by revocation, by theft (which also ends every session of the user
and moves their stamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.ids import is_session_id, new_handle, new_session_id
from ..core.records import RecordKind, SessionRecord
from ..users import models as events
from . import rotation
from .assurance import Assurance
from .client import NO_CLIENT, Client
from .sessions import SERIES_KEY
from .stamps import STAMP, born_under

if TYPE_CHECKING:
    from .services import Services

#: Longest signed cookie value looked at.
MAX_COOKIE = 512


@dataclass(frozen=True)
class Issued:
    """A new series: the cookie to set and the series' store key."""

    cookie: str
    key: str
    max_age: int


@dataclass(frozen=True)
class Remembered:
    """A cookie that logs in: the user, the cookie to set, the session to use."""

    user_id: str
    #: The new signed cookie (the same successor again for a replay).
    cookie: str
    max_age: int
    #: The series' store key.
    key: str
    #: The session ID to log in with (the same one again for a replay).
    session_id: str
    #: The stamp the series (and so the session) was born under.
    stamp: int
    #: ``True`` when this was the previous cookie within the grace window.
    replayed: bool
    #: The assurance the series was issued at: the login restores it.
    assurance: Assurance


class RememberSeries:
    """Issue, use and forget remember-me series."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def issue(
        self,
        user_id: str,
        stamp: int,
        client: Client = NO_CLIENT,
        assurance: Assurance | None = None,
    ) -> Issued:
        """Start a series for ``user_id`` born under ``stamp``; return its cookie.

        ``assurance`` (a password login now, if not given) is what a login by
        this cookie restores.
        """
        services = self.services
        now = services.clock()
        series, secret = rotation.new_secret(), rotation.new_secret()
        record = SessionRecord(
            key=RecordKind.REMEMBER.key(series),
            handle=new_handle(),
            created_at=now,
            last_seen_at=now,
            expires_at=now + services.settings.remember_lifetime,
            user_id=user_id,
            data=rotation.initial_fields(secret, now),
            meta={
                STAMP: stamp,
                **(assurance or Assurance.password(now)).to_meta(),
                **client.meta(),
            },
            kind=RecordKind.REMEMBER,
        )
        services.store.save(record)
        return Issued(self._sign(series, secret), record.key, self._max_age(record, now))

    def use(self, cookie: str, client: Client = NO_CLIENT) -> Remembered | None:
        """Present a cookie; return the login it gives, or ``None`` (clear the cookie).

        An unknown, expired, revoked or tampered cookie gives ``None``; so does a
        stolen one, after the series and every session of its user have ended.
        """
        services = self.services
        parsed = self._parse(cookie)
        if parsed is None:
            return None
        series, secret = parsed
        now = services.clock()
        record = services.store.get(RecordKind.REMEMBER.key(series))
        if record is None or record.kind is not RecordKind.REMEMBER or record.expires_at <= now:
            return None
        user_id = record.user_id or ""
        alive, _ = services.stamps.alive(record)
        if alive is None:  # born before a revocation
            self._end(record)
            return None
        record = alive
        outcome = rotation.consume(
            services.store,
            record,
            secret,
            now=now,
            grace=services.settings.rotation_grace,
            make_successor=lambda: {"secret": rotation.new_secret(), "sid": new_session_id()},
            update=lambda r: setattr(r, "last_seen_at", now),
        )
        if outcome.verdict is rotation.Verdict.GONE:
            return None  # ended (a logout) while this use ran: no theft
        if outcome.verdict is rotation.Verdict.STOLEN or outcome.successor is None:
            self._theft(record, client)
            return None
        successor = outcome.successor
        if not is_session_id(successor.get("sid", "")):
            return None
        record = outcome.record
        return Remembered(
            user_id=user_id,
            cookie=self._sign(series, successor["secret"]),
            max_age=self._max_age(record, now),
            key=record.key,
            session_id=successor["sid"],
            stamp=born_under(record.meta),
            replayed=outcome.verdict is rotation.Verdict.REPLAYED,
            assurance=Assurance.from_meta(record.meta, record.created_at),
        )

    def forget(self, cookie: str | None, *, key: str | None = None) -> None:
        """End the series of ``cookie`` (or with store ``key``) and the sessions it logged in."""
        if key is None and cookie is not None:
            parsed = self._parse(cookie)
            key = RecordKind.REMEMBER.key(parsed[0]) if parsed is not None else None
        if key is None:
            return
        record = self.services.store.get(key)
        if record is not None and record.kind is RecordKind.REMEMBER:
            self._end(record)

    def _end(self, record: SessionRecord) -> None:
        """Delete the series and every session it logged in."""
        store = self.services.store
        store.delete(record.key)
        if record.user_id:
            for other in store.list_by_user(record.user_id):
                if other.meta.get(SERIES_KEY) == record.key:
                    store.delete(other.key)

    def _theft(self, record: SessionRecord, client: Client) -> None:
        services = self.services
        user_id = record.user_id or ""
        services.store.delete(record.key)
        if user_id:
            services.stamps.bump(user_id)  # a racing login from the stolen cookie loses too
            revoked = services.store.delete_by_user(user_id)
        else:
            revoked = 0
        services.audit(
            events.REMEMBER_THEFT,
            client=client,
            user_id=user_id,
            detail={"sessions_revoked": revoked},
        )

    def _sign(self, series: str, secret: str) -> str:
        return self.services.remember_signer.sign(f"{series}.{secret}")

    def _parse(self, cookie: str) -> tuple[str, str] | None:
        if len(cookie) > MAX_COOKIE:
            return None
        lifetime = int(self.services.settings.remember_lifetime)
        value = self.services.remember_signer.verify(cookie, max_age=lifetime)
        if value is None or value.count(".") != 1:
            return None
        series, secret = value.split(".")
        # Both are token_urlsafe(32), shaped like a session ID; only a holder of
        # SECRET_KEY could sign anything else, but it must not reach the store.
        if not (is_session_id(series) and is_session_id(secret)):
            return None
        return series, secret

    @staticmethod
    def _max_age(record: SessionRecord, now: float) -> int:
        return max(0, int(record.expires_at - now))
