"""Tokens for APIs: JWT access tokens and rotating, one-use refresh tokens.

A *family* is one device's chain of tokens: a record in the session store
(kind ``token``, indexed under its user like a session), so it is listed and
revoked with the user's sessions, and ends with them (revoke all, password
change, disable). Each access token names its family (``fam``); checking a
token reads that one record, which also holds the token IDs revoked early.

Each refresh token is a record of its own, keyed by the hash of the token,
holding its state (live or spent). A refresh spends it with a compare-and-set
and yields a new pair. A spent token shown again within the grace window is a
race between tabs or a retry and yields a pair of the same family; later, it
means the token was copied: the family is revoked and the reuse audited.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Response, g, request

from ..core.clock import Clock
from ..core.errors import ConfigurationError, TokenError
from ..core.ids import new_handle, store_key
from ..core.records import SessionRecord
from ..core.settings import Settings
from ..core.tokens import TokenSigner, new_jti
from ..users import models as events
from .client import client_meta
from .extension import CoatCheck, CoatCheckState

FAMILY = "token"
REFRESH = "refresh"
_REVOKED = "x:"
_BEARER = "_coatcheck_bearer"


def make_signer(settings: Settings, keys: list[bytes], clock: Clock) -> TokenSigner:
    """Return the token signer the settings describe."""
    pem: bytes | None = None
    if settings.jwt_private_key:
        text = settings.jwt_private_key
        if "-----BEGIN" in text:
            pem = text.encode()
        else:
            try:
                pem = Path(text).read_bytes()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read COATCHECK_JWT_PRIVATE_KEY file {text}: {exc}"
                ) from None
    return TokenSigner(
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        secret_keys=keys,
        private_key_pem=pem,
        leeway=settings.jwt_leeway,
        clock=clock,
    )


def _family_key(handle: str) -> str:
    return store_key(handle, purpose="token-family")


def issue_tokens(user: Any) -> dict[str, Any]:
    """Start a token family (a device) for ``user``; return its first pair."""
    state = CoatCheck.state()
    now = state.clock()
    handle = new_handle()
    family = SessionRecord(
        key=_family_key(handle),
        handle=handle,
        created_at=now,
        last_seen_at=now,
        expires_at=now + state.settings.refresh_token_lifetime,
        user_id=str(user.id),
        meta={
            "kind": FAMILY,
            "username": user.username,
            "roles": sorted(set(user.roles)),
            **client_meta(),
        },
    )
    state.store.save(family)
    state.audit(
        events.LOGIN_SUCCEEDED,
        user_id=family.user_id,
        username=user.username,
        detail={"via": "token", "family": handle},
    )
    return _pair(state, family, now, secrets.token_urlsafe(32), new=True)


def refresh_tokens(refresh_token: str) -> dict[str, Any]:
    """Spend a refresh token; return a new pair of the same family.

    Raise :class:`TokenError` for an unknown, expired or revoked token, and
    for the reuse of a spent one after the grace window, which also revokes
    the whole family.
    """
    state = CoatCheck.state()
    now = state.clock()
    record = _refresh_record(state, refresh_token, now)
    family = state.store.get(_family_key(str(record.meta.get("family", ""))))
    if family is None or family.meta.get("kind") != FAMILY or family.expires_at <= now:
        raise TokenError("the token's family is revoked")
    for _ in range(2):
        if _state(record) == "live":
            successor = secrets.token_urlsafe(32)
            spent = replace(
                record,
                data={
                    "state": '"spent"',
                    "spent_at": json.dumps(now),
                    "successor": json.dumps(_seal(refresh_token, successor)),
                },
            )
            if state.store.save(spent, set(spent.data), expect=("state", '"live"')):
                state.store.touch(family.key, now, now + state.settings.refresh_token_lifetime)
                return _pair(state, family, now, successor, new=True)
            record = _refresh_record(state, refresh_token, now)  # spent meanwhile: look again
            continue
        spent_at = float(json.loads(record.data.get("spent_at", "0")))
        if now - spent_at <= state.settings.refresh_grace:
            # Two tabs or a retry: the same successor again, never a second chain,
            # so a copied token that races its owner still collides with it later.
            successor = _unseal(refresh_token, json.loads(record.data.get("successor", '""')))
            return _pair(state, family, now, successor, new=False)
        state.store.delete(family.key)
        state.audit(
            events.TOKEN_REUSE,
            user_id=family.user_id,
            username=family.meta.get("username"),
            detail={"family": family.handle},
        )
        raise TokenError("refresh token reused: its family is revoked")
    raise TokenError("the refresh token is being used concurrently; try again")


def revoke_token(token: str) -> None:
    """Revoke a refresh token (its whole family) or an access token (its ID).

    Unknown or invalid tokens are ignored, as RFC 7009 asks.
    """
    state = CoatCheck.state()
    now = state.clock()
    if token.count(".") == 2:
        try:
            claims = state.token_signer.verify(token, verify_exp=False)
        except TokenError:
            return
        family = state.store.get(_family_key(str(claims.get("fam", ""))))
        if family is None or family.meta.get("kind") != FAMILY:
            return
        expired = {_REVOKED + k for k, exp in _revoked(family).items() if exp < now}
        family.data = {_REVOKED + str(claims["jti"]): json.dumps(claims["exp"])}
        state.store.save(family, set(family.data) | expired)  # and forget expired ones
        return
    try:
        record = _refresh_record(state, token, now)
    except TokenError:
        return
    family_key = _family_key(str(record.meta.get("family", "")))
    family = state.store.get(family_key)
    state.store.delete(family_key)
    if family is not None:
        state.audit(
            events.SESSION_REVOKED, user_id=family.user_id, detail={"family": family.handle}
        )


def revoke_family(handle: str) -> None:
    """End a token family (a device) by its handle."""
    CoatCheck.state().store.delete(_family_key(handle))


def family_key(handle: str) -> str:
    """Return the store key of the token family with ``handle``."""
    return _family_key(handle)


def bearer_token() -> str | None:
    """Return the request's bearer token, or ``None``."""
    scheme, _, token = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def verify_access_token(token: str) -> tuple[dict[str, Any], SessionRecord]:
    """Return the claims and the family record of a valid, unrevoked access token."""
    state = CoatCheck.state()
    claims = state.token_signer.verify(token)
    family = state.store.get(_family_key(str(claims.get("fam", ""))))
    if family is None or family.meta.get("kind") != FAMILY or family.user_id != claims["sub"]:
        raise TokenError("the token's family is revoked")
    if _REVOKED + str(claims["jti"]) in family.data:
        raise TokenError("the token is revoked")
    return claims, family


def bearer_family() -> SessionRecord | None:
    """Return the family record of the request's valid bearer token (once per request)."""
    if _BEARER not in g:
        token = bearer_token()
        family = None
        if token is not None:
            try:
                _, family = verify_access_token(token)
            except TokenError:
                family = None
        setattr(g, _BEARER, family)
    found: SessionRecord | None = g.get(_BEARER)
    return found


def _pair(
    state: CoatCheckState, family: SessionRecord, now: float, refresh: str, *, new: bool
) -> dict[str, Any]:
    """Return an access token and ``refresh``, storing the latter when it is ``new``."""
    settings = state.settings
    if new:
        state.store.save(
            SessionRecord(
                key=store_key(refresh, purpose=REFRESH),
                handle=new_handle(),
                created_at=now,
                last_seen_at=now,
                expires_at=now + settings.refresh_token_lifetime,
                meta={"kind": REFRESH, "family": family.handle},
                data={"state": '"live"'},
            )
        )
    access = state.token_signer.sign(
        {
            "sub": family.user_id,
            "iat": int(now),
            "exp": int(now + settings.access_token_lifetime),
            "jti": new_jti(),
            "roles": list(family.meta.get("roles", [])),
            "fam": family.handle,
        }
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": int(settings.access_token_lifetime),
        "refresh_token": refresh,
    }


def _refresh_record(state: CoatCheckState, token: str, now: float) -> SessionRecord:
    if not 20 <= len(token) <= 128:
        raise TokenError("not a refresh token")
    record = state.store.get(store_key(token, purpose=REFRESH))
    if record is None or record.meta.get("kind") != REFRESH or record.expires_at <= now:
        raise TokenError("unknown or expired refresh token")
    return record


def _state(record: SessionRecord) -> str:
    return str(json.loads(record.data.get("state", '"spent"')))


def _revoked(family: SessionRecord) -> dict[str, float]:
    return {
        name[len(_REVOKED) :]: float(json.loads(value))
        for name, value in family.data.items()
        if name.startswith(_REVOKED)
    }


def mark_bearer_response(response: Response) -> Response:
    """Keep responses to bearer-authenticated requests out of caches (after-request hook)."""
    family = g.get(_BEARER)
    if family is not None:
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Authorization")
    return response


def _seal(spent: str, successor: str) -> str:
    """Encrypt ``successor`` with a key only the holder of ``spent`` has.

    The store keeps refresh tokens hashed; this lets a spent token fetch its
    successor again during the grace window without the store ever holding a
    usable token.
    """
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(spent)).encrypt(nonce, successor.encode("ascii"), None)
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _unseal(spent: str, sealed: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        plain = AESGCM(_sealing_key(spent)).decrypt(raw[:12], raw[12:], None)
    except (InvalidTag, ValueError, UnicodeError):
        raise TokenError("the spent refresh token has no successor to give") from None
    return plain.decode("ascii")


def _sealing_key(token: str) -> bytes:
    return hashlib.sha256(b"coatcheck.refresh.successor\0" + token.encode("utf-8")).digest()
