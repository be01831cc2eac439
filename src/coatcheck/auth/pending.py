"""A login half done: the password was right, a second factor (or enrolment) is missing.

It is kept in the session's meta under :data:`PENDING`, with no user on the
session: a pending session is not logged in, reaches nothing but the next
step, and ends after :data:`SECOND_FACTOR_LIFETIME` (enrolment:
:data:`ENROLMENT_LIFETIME`). It remembers the revocation stamp read when the
password was checked, so a revocation racing the second step wins, and
whether remember-me was asked for (issued only when the login completes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: The session meta key of a pending login.
PENDING = "pending"
#: The two stages a login can wait at.
SECOND_FACTOR, ENROLMENT = "second_factor", "enrolment"
#: Seconds a pending login waits for its second factor.
SECOND_FACTOR_LIFETIME = 300.0
#: Seconds a pending login waits for the user to enrol a factor the policy requires.
ENROLMENT_LIFETIME = 900.0


@dataclass(frozen=True)
class PendingLogin:
    """Who is logging in, how far they got, and until when they may finish."""

    #: The user's ID as text, and as the application's loader gave it.
    user_id: str
    typed_id: int | str
    username: str
    roles: tuple[str, ...]
    #: The revocation stamp read when the password was checked.
    stamp: int
    #: Methods already checked (``["pwd"]``).
    methods: tuple[str, ...]
    remember: bool
    #: :data:`SECOND_FACTOR` or :data:`ENROLMENT`.
    stage: str
    #: The methods that can finish it (second-factor stage).
    allowed: tuple[str, ...]
    until: float
    #: How the first step was made (``password``), for the audit log.
    via: str = "password"

    def to_meta(self) -> dict[str, Any]:
        """Return the JSON form kept in the session's meta."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], now: float) -> PendingLogin | None:
        """Return the pending login in ``meta``, or ``None`` if none, malformed or expired."""
        raw = meta.get(PENDING)
        if not isinstance(raw, dict):
            return None
        try:
            pending = cls(
                user_id=str(raw["user_id"]),
                typed_id=raw["typed_id"],
                username=str(raw["username"]),
                roles=tuple(str(r) for r in raw["roles"]),
                stamp=int(raw["stamp"]),
                methods=tuple(str(m) for m in raw["methods"]),
                remember=bool(raw["remember"]),
                stage=str(raw["stage"]),
                allowed=tuple(str(m) for m in raw.get("allowed", ())),
                until=float(raw["until"]),
                via=str(raw.get("via", "password")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        if pending.stage not in (SECOND_FACTOR, ENROLMENT) or now >= pending.until:
            return None
        return pending
