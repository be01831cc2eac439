"""A user's sessions as devices: list them, revoke one, revoke the others.

Revoking a session also ends the remember-me series it came with, so a
revoked device cannot log itself back in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.records import SessionRecord
from ..users import models as events
from .extension import CoatCheck, current_session
from .login import current_user
from .remember import REMEMBER_KEY

if TYPE_CHECKING:
    from ..users import User


@dataclass(frozen=True)
class DeviceSession:
    """One of a user's sessions, as shown to the user or an administrator."""

    handle: str
    kind: str
    user_id: str | None
    created_at: float
    last_seen_at: float
    expires_at: float
    ip: str | None
    user_agent: str | None
    current: bool

    def to_json(self) -> dict[str, Any]:
        """Return the API form of this session (times in ISO 8601, UTC)."""
        return {
            "handle": self.handle,
            "kind": self.kind,
            "created_at": iso_time(self.created_at),
            "last_seen_at": iso_time(self.last_seen_at),
            "expires_at": iso_time(self.expires_at),
            "ip": self.ip,
            "user_agent": self.user_agent,
            "current": self.current,
        }


def iso_time(timestamp: float) -> str:
    """Return a Unix time as ISO 8601 in UTC (``2026-11-22T01:02:03Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _kind(record: SessionRecord) -> str:
    return str(record.meta.get("kind", "session"))


def _device(record: SessionRecord, current_handle: str | None) -> DeviceSession:
    return DeviceSession(
        handle=record.handle,
        kind=_kind(record),
        user_id=record.user_id,
        created_at=record.created_at,
        last_seen_at=record.last_seen_at,
        expires_at=record.expires_at,
        ip=record.meta.get("ip"),
        user_agent=record.meta.get("user_agent"),
        current=record.handle == current_handle,
    )


def _visible(records: Iterable[SessionRecord]) -> list[SessionRecord]:
    """Leave out remember-me series that belong to a listed session."""
    records = list(records)
    linked = {r.meta.get(REMEMBER_KEY) for r in records if _kind(r) == "session"}
    return [r for r in records if not (_kind(r) == "remember" and r.key in linked)]


def _current_handle() -> str | None:
    """Return the handle of what authenticates this request: a session or a token family."""
    if current_user.via == "bearer":
        return current_user.handle
    session = current_session()
    return session.handle if session.record is not None else None


def current_device_keys() -> set[str]:
    """Return the store keys of this request's own device: its session or token family,
    and its remember-me series."""
    if current_user.via == "bearer" and current_user.handle is not None:
        from .tokens import family_key

        return {family_key(current_user.handle)}
    session = current_session()
    keys = {session.record.key} if session.record is not None else set()
    remember = session.meta.get(REMEMBER_KEY)
    return keys | ({remember} if isinstance(remember, str) else set())


def _user_id(user_id: str | int | None) -> str:
    if user_id is not None:
        return str(user_id)
    if current_user.id is None:
        raise ValueError("no user given and nobody is logged in")
    return current_user.id


def list_sessions(user_id: str | int | None = None) -> list[DeviceSession]:
    """Return the live sessions of a user (default: the current one), oldest first."""
    state = CoatCheck.state()
    now, lifetimes, current = state.clock(), state.lifetimes, _current_handle()
    records = [
        r
        for r in state.store.list_by_user(_user_id(user_id))
        if _kind(r) != "session" or not lifetimes.is_expired(r, now)
    ]
    return [_device(r, current) for r in _visible(records)]


def all_sessions(limit: int = 1000) -> list[DeviceSession]:
    """Return up to ``limit`` live sessions of all users, most recently seen first."""
    state = CoatCheck.state()
    current = _current_handle()
    return [_device(r, current) for r in _visible(state.store.list_all(limit)) if r.user_id]


def revoke_session(handle: str, *, user_id: str | int | None = None) -> bool:
    """End one session of a user (default: the current one) by its handle.

    Return ``False`` if the user has no session with that handle.
    """
    state = CoatCheck.state()
    owner = _user_id(user_id)
    for record in state.store.list_by_user(owner):
        if record.handle == handle:
            _delete(record)
            state.audit(events.SESSION_REVOKED, user_id=owner, detail={"handle": handle})
            return True
    return False


def revoke_other_sessions() -> int:
    """End every session of the current user but this one; return how many."""
    state = CoatCheck.state()
    owner = _user_id(None)
    keep = current_device_keys()
    doomed = [r for r in state.store.list_by_user(owner) if r.key not in keep]
    for record in doomed:
        state.store.delete(record.key)
    state.audit(events.ALL_SESSIONS_REVOKED, user_id=owner, detail={"revoked": len(doomed)})
    return len(doomed)


def revoke_all_sessions(user_id: str | int) -> int:
    """End every session and remember-me series of a user (an administrator's act)."""
    state = CoatCheck.state()
    revoked = state.store.delete_by_user(str(user_id))
    state.audit(events.ALL_SESSIONS_REVOKED, user_id=user_id, detail={"revoked": revoked})
    return revoked


def set_user_roles(user_id: int, roles: Iterable[str]) -> User:
    """Change a user's roles, in the user store and in every live session of theirs.

    The current user's own session also gets a new ID (a change of privilege).
    """
    state = CoatCheck.state()
    before = state.users.get(user_id)
    user = state.users.set_roles(user_id, roles)
    new_roles = sorted(user.roles)
    session = current_session()
    for record in state.store.list_by_user(str(user_id)):
        if _kind(record) not in ("session", "token"):
            continue
        if session.record is not None and record.key == session.record.key:
            continue
        record.meta["roles"] = new_roles
        state.store.save(record, set(), changed_meta={"roles"})
    if session.user_id == str(user_id):
        session.set_meta("roles", new_roles)
        session.rotate_requested = True
    state.audit(
        events.ROLES_CHANGED,
        user_id=user.id,
        username=user.username,
        detail={"before": sorted(before.roles) if before else [], "after": new_roles},
    )
    return user


def _delete(record: SessionRecord) -> None:
    store = CoatCheck.state().store
    store.delete(record.key)
    linked = record.meta.get(REMEMBER_KEY)
    if isinstance(linked, str):
        store.delete(linked)
