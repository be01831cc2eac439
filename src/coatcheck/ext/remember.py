"""Remember-me: a long-lived cookie holding a series and a token.

The series is a record in the session store (kind ``remember``, keyed by the
hash of the series ID with its purpose), holding only hashes of the current
and previous token. Each use logs the user in with a new session and rotates
the token with a compare-and-set. A superseded token of a live series means
the cookie was copied: the series and every session of the user are revoked.
A previous token shown within a few seconds of its rotation is a race between
tabs, not theft, and is let in without rotating again.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import secrets
from typing import TYPE_CHECKING

from ..core.ids import hash_token, is_session_id, store_key
from ..core.records import SessionRecord
from ..users import models as events
from .client import client_meta
from .cookies import cookie_name, queue_cookie, single_cookie
from .extension import CoatCheck, CoatCheckState, current_session

if TYPE_CHECKING:
    from .login import AuthenticatedUser

KIND = "remember"
#: Session meta key naming the store key of the device's remember-me series.
REMEMBER_KEY = "remember_key"
#: Seconds during which the token just replaced still logs in (tabs racing).
GRACE_SECONDS = 30


def _cookie(state: CoatCheckState) -> str:
    return cookie_name(state.settings, "remember")


def issue_remember_cookie(user_id: str) -> str:
    """Start a remember-me series for ``user_id``, queue its cookie; return its store key."""
    state = CoatCheck.state()
    series, token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = state.clock()
    record = SessionRecord(
        key=store_key(series, purpose=KIND),
        handle=secrets.token_hex(16),
        created_at=now,
        last_seen_at=now,
        expires_at=now + state.settings.remember_lifetime,
        user_id=user_id,
        data=_token_fields(hash_token(token), previous="", rotated_at=now),
        meta={"kind": KIND, **client_meta()},
    )
    state.store.save(record)
    _queue(state, series, token, record.expires_at - now)
    return record.key


def login_from_remember_cookie() -> AuthenticatedUser | None:
    """Log in from a remember-me cookie; return the user, or ``None``."""
    from .login import login_user

    state = CoatCheck.state()
    parsed = _read_cookie(state)
    if parsed is None:
        return None
    series, token = parsed
    record = state.store.get(store_key(series, purpose=KIND))
    now = state.clock()
    if record is None or record.meta.get("kind") != KIND or record.expires_at <= now:
        queue_cookie(_cookie(state), None)
        return None
    presented = hash_token(token)
    current, previous, rotated_at = _token_state(record)
    if hmac.compare_digest(presented, current):
        new_token = secrets.token_urlsafe(32)
        update = dataclasses.replace(record)
        update.data = _token_fields(hash_token(new_token), previous=current, rotated_at=now)
        update.last_seen_at = now
        if state.store.save(update, set(update.data), expect=("token", record.data["token"])):
            _queue(state, series, new_token, record.expires_at - now)
    elif not (hmac.compare_digest(presented, previous) and now - rotated_at <= GRACE_SECONDS):
        _theft(state, record)
        return None
    user = state.load_user(record.user_id or "")
    if user is None or getattr(user, "disabled", False):
        state.store.delete(record.key)
        queue_cookie(_cookie(state), None)
        return None
    login_user(user, via="remember")
    current_session().set_meta(REMEMBER_KEY, record.key)
    from .login import AuthenticatedUser, session_user

    restored = session_user()  # built from the new session, like any other request's user
    return restored if isinstance(restored, AuthenticatedUser) else None


def forget_remember_cookie() -> None:
    """End the remember-me series of this request's cookie, and clear the cookie."""
    state = CoatCheck.state()
    parsed = _read_cookie(state)
    if parsed is not None:
        state.store.delete(store_key(parsed[0], purpose=KIND))
    if single_cookie(_cookie(state)) is not None:
        queue_cookie(_cookie(state), None)


def _theft(state: CoatCheckState, record: SessionRecord) -> None:
    user_id = record.user_id or ""
    state.store.delete(record.key)
    revoked = state.store.delete_by_user(user_id)
    queue_cookie(_cookie(state), None)
    state.audit(events.REMEMBER_THEFT, user_id=user_id, detail={"sessions_revoked": revoked})


def _read_cookie(state: CoatCheckState) -> tuple[str, str] | None:
    signed = single_cookie(_cookie(state))
    if signed is None or len(signed) > 512:
        return None
    value = state.remember_signer.verify(signed, max_age=int(state.settings.remember_lifetime))
    if value is None or value.count(".") != 1:
        return None
    series, token = value.split(".")
    # Both are token_urlsafe(32), shaped like a session ID; only a holder of
    # SECRET_KEY could sign anything else, but it must not reach the store.
    if not (is_session_id(series) and is_session_id(token)):
        return None
    return series, token


def _queue(state: CoatCheckState, series: str, token: str, max_age: float) -> None:
    signed = state.remember_signer.sign(f"{series}.{token}")
    queue_cookie(_cookie(state), signed, max_age=max(0, int(max_age)))


def _token_fields(token_hash: str, *, previous: str, rotated_at: float) -> dict[str, str]:
    return {
        "token": json.dumps(token_hash),
        "previous": json.dumps(previous),
        "rotated_at": json.dumps(rotated_at),
    }


def _token_state(record: SessionRecord) -> tuple[str, str, float]:
    try:
        return (
            str(json.loads(record.data["token"])),
            str(json.loads(record.data.get("previous", '""'))),
            float(json.loads(record.data.get("rotated_at", "0"))),
        )
    except (KeyError, ValueError, TypeError):
        return "", "", 0.0
