"""Token families: JWT access tokens and one-use refresh tokens, one record per device.

A family is one record (kind ``token-family``, keyed by the hash of a secret
family ID, indexed under its user) holding the user, roles, the stamp it was
born under, the access-token IDs revoked early, and the rotation fields of
:mod:`.rotation`. A refresh token is ``<family ID>.<secret>``: the ID finds the
record, the secret is checked against the hashes it holds. So one login plus
any number of refreshes is one record. The family's public handle (device
lists, audit) is a separate random value: knowing it gives no way to address
the family, so nobody can end someone else's family by guessing at its
refresh token. An access token names its family by the record's store key
(``fam``), which is a hash: it finds the record and builds no refresh token.

A family lives ``refresh_token_lifetime`` after its last refresh (idle) and
at most ``token_family_lifetime`` after its login (absolute). A refresh reads
the user's stamp, then the user: a disabled user's family ends, and changed
roles are carried into the new access token.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..core.errors import TokenError
from ..core.ids import is_session_id, new_handle
from ..core.records import RecordKind, SessionRecord
from ..core.tokens import new_jti
from ..users import models as events
from . import rotation
from .assurance import Assurance
from .client import NO_CLIENT, Client
from .sessions import USER_ID
from .stamps import STAMP, is_current, stamp_key, stamp_value

if TYPE_CHECKING:
    from .services import Services

_REVOKED = "x:"
_STORE_KEY = re.compile(r"[0-9a-f]{64}")
#: Meta key holding when the family was born (its absolute lifetime counts from it).
_BORN = "born_at"


class TokenFamilies:
    """Issue, refresh, verify and revoke API tokens."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def issue(
        self,
        user: Any,
        stamp: int,
        client: Client = NO_CLIENT,
        assurance: Assurance | None = None,
    ) -> dict[str, Any]:
        """Start a family (a device) for ``user`` born under ``stamp``; return its first pair.

        Its access tokens carry ``assurance`` (a password login now, if not
        given) as ``amr`` and ``acr``, refreshed or not.
        """
        services = self.services
        now = services.clock()
        family_id, secret = rotation.new_secret(), rotation.new_secret()
        handle = new_handle()
        family = SessionRecord(
            key=RecordKind.TOKEN_FAMILY.key(family_id),
            handle=handle,
            created_at=now,
            last_seen_at=now,
            expires_at=self._expiry(now, now),
            user_id=str(user.id),
            data=rotation.initial_fields(secret, now),
            meta={
                USER_ID: user.id if isinstance(user.id, int | str) else str(user.id),
                "username": user.username,
                "roles": sorted(set(user.roles)),
                STAMP: stamp,
                _BORN: now,
                **(assurance or Assurance.password(now)).to_meta(),
                **client.meta(),
            },
            kind=RecordKind.TOKEN_FAMILY,
        )
        services.store.save(family)
        services.audit(
            events.LOGIN_SUCCEEDED,
            client=Client(client.ip, client.user_agent, handle),
            user_id=family.user_id,
            username=user.username,
            detail={"via": "token", "family": handle},
        )
        return self._pair(family, now, f"{family_id}.{secret}")

    def refresh(self, refresh_token: str, client: Client = NO_CLIENT) -> dict[str, Any]:
        """Spend a refresh token; return a new pair of the same family.

        Raise :class:`TokenError` for an unknown, expired or revoked token, for
        a family born before its user's last revocation, for a disabled user,
        and for the reuse of a spent token after the grace window, which also
        ends the whole family.
        """
        services = self.services
        now = services.clock()
        family_id, secret = _parse(refresh_token)
        family = self._live(RecordKind.TOKEN_FAMILY.key(family_id), now)
        user_id = family.user_id or ""
        alive, _ = services.stamps.alive(family)  # before the user: a racing revocation wins
        if alive is None:
            services.store.delete(family.key)
            raise TokenError("the token's family was revoked")
        family = alive
        user = services.load_user(user_id)
        if user is None or getattr(user, "disabled", False):
            services.store.delete(family.key)
            raise TokenError("the token's user is disabled or gone")
        roles = sorted(set(user.roles))

        def update(record: SessionRecord) -> None:
            record.last_seen_at = now
            record.expires_at = self._expiry(float(record.meta.get(_BORN, now)), now)
            record.meta["roles"] = roles
            record.meta["username"] = user.username

        outcome = rotation.consume(
            services.store,
            family,
            secret,
            now=now,
            grace=services.settings.rotation_grace,
            make_successor=lambda: {"secret": rotation.new_secret()},
            update=update,
        )
        if outcome.verdict is rotation.Verdict.GONE:
            raise TokenError("the token's family was revoked")
        if outcome.verdict is rotation.Verdict.STOLEN or outcome.successor is None:
            services.store.delete(family.key)
            services.audit(
                events.TOKEN_REUSE,
                client=client,
                user_id=family.user_id,
                username=family.meta.get("username"),
                detail={"family": family.handle},
            )
            raise TokenError("refresh token reused: its family is revoked")
        record = outcome.record
        record.meta["roles"] = roles  # a replay answers with today's roles too
        return self._pair(record, now, f"{family_id}.{outcome.successor['secret']}")

    def verify(self, token: str) -> tuple[dict[str, Any], SessionRecord]:
        """Return the claims and the family of a valid, unrevoked access token."""
        services = self.services
        claims = services.token_signer.verify(token)
        family, stamp = self._named_with_stamp(claims)
        now = services.clock()
        if (
            family is None
            or family.kind is not RecordKind.TOKEN_FAMILY
            or family.user_id != claims["sub"]
            or family.expires_at <= now
        ):
            raise TokenError("the token's family is revoked")
        if not is_current(family.meta, stamp_value(stamp)):
            raise TokenError("the token's family was revoked")
        if _REVOKED + str(claims["jti"]) in family.data:
            raise TokenError("the token is revoked")
        return claims, family

    def revoke(self, token: str, client: Client = NO_CLIENT) -> None:
        """Revoke a refresh token (its whole family) or an access token (its ID).

        Unknown or invalid tokens are ignored, as RFC 7009 asks.
        """
        services = self.services
        now = services.clock()
        if token.count(".") == 2:
            try:
                claims = services.token_signer.verify(token, verify_exp=False)
            except TokenError:
                return
            family = self._named(claims)
            if family is None or family.kind is not RecordKind.TOKEN_FAMILY:
                return
            expired = {_REVOKED + k for k, exp in _revoked(family).items() if exp < now}
            family.data = {_REVOKED + str(claims["jti"]): json.dumps(claims["exp"])}
            services.store.save(family, set(family.data) | expired)  # and forget expired ones
            return
        try:
            family_id, secret = _parse(token)
        except TokenError:
            return
        family = services.store.get(RecordKind.TOKEN_FAMILY.key(family_id))
        if family is None or family.kind is not RecordKind.TOKEN_FAMILY:
            return
        # Only a holder of one of its secrets may end a family by its token.
        if not rotation.holds_secret(family, secret):
            return
        services.store.delete(family.key)
        services.audit(
            events.SESSION_REVOKED,
            client=client,
            user_id=family.user_id,
            detail={"family": family.handle},
        )

    def end(self, key: str) -> None:
        """End the token family (a device) stored under ``key``."""
        self.services.store.delete(key)

    def _named(self, claims: dict[str, Any]) -> SessionRecord | None:
        """Return the family an access token's ``fam`` claim names (its store key)."""
        return self._named_with_stamp(claims)[0]

    def _named_with_stamp(
        self, claims: dict[str, Any]
    ) -> tuple[SessionRecord | None, SessionRecord | None]:
        """Return that family and its user's stamp record, read together (one check)."""
        key = str(claims.get("fam", ""))
        if not _STORE_KEY.fullmatch(key):
            return None, None
        return self.services.store.get_pair(key, stamp_key)

    def _live(self, key: str, now: float) -> SessionRecord:
        family = self.services.store.get(key)
        if family is None or family.kind is not RecordKind.TOKEN_FAMILY or family.expires_at <= now:
            raise TokenError("unknown, expired or revoked refresh token")
        return family

    def _expiry(self, born_at: float, now: float) -> float:
        settings = self.services.settings
        return min(now + settings.refresh_token_lifetime, born_at + settings.token_family_lifetime)

    def _pair(self, family: SessionRecord, now: float, refresh: str) -> dict[str, Any]:
        settings = self.services.settings
        assurance = Assurance.from_meta(family.meta, family.created_at)
        access = self.services.token_signer.sign(
            {
                "amr": list(assurance.amr),
                "acr": assurance.acr,
                # When the login was checked: a refresh is not a new authentication.
                "auth_time": int(assurance.authenticated_at),
                "sub": family.user_id,
                "iat": int(now),
                "exp": int(now + settings.access_token_lifetime),
                "jti": new_jti(),
                "roles": list(family.meta.get("roles", [])),
                "fam": family.key,
            }
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(settings.access_token_lifetime),
            "refresh_token": refresh,
        }


def _parse(token: str) -> tuple[str, str]:
    family_id, sep, secret = token.partition(".")
    if not sep or not is_session_id(family_id) or not is_session_id(secret):
        raise TokenError("not a refresh token")
    return family_id, secret


def _revoked(family: SessionRecord) -> dict[str, float]:
    return {
        name[len(_REVOKED) :]: float(json.loads(value))
        for name, value in family.data.items()
        if name.startswith(_REVOKED)
    }
