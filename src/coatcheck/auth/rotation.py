"""The one rotation protocol, for remember-me series and token families alike.

A series or a family is one record holding the hash of its current secret,
the hash of the previous one, when it was rotated, and the *successor*
(whatever the last rotation handed out) sealed with a key derived from the
previous secret. Presenting:

- the current secret rotates: a compare-and-set on the current hash, so
  exactly one of two racing requests rotates;
- the previous secret within the grace window answers with the same
  successor again (two tabs, a retry), never a second chain: a copied secret
  that races its owner ends up on the owner's chain, and dies with it;
- anything else that addresses a live record is theft: the caller ends it;
- a record ended while the use ran (a logout racing it) is simply gone.

The store never holds a usable secret: only hashes, and a successor sealed
under a secret it does not have.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..core.ids import hash_token
from ..core.records import SessionRecord
from ..stores.base import SessionStore

CURRENT, PREVIOUS, ROTATED_AT, SEALED = "current", "previous", "rotated_at", "sealed"
FIELDS = frozenset({CURRENT, PREVIOUS, ROTATED_AT, SEALED})
#: Where remember-me series written before this protocol keep their current hash.
_LEGACY_CURRENT = "token"


class Verdict(enum.Enum):
    """What presenting a secret amounts to."""

    ROTATED = "rotated"
    REPLAYED = "replayed"
    STOLEN = "stolen"
    #: The record was ended (logout, revocation, expiry) while this use ran: no theft.
    GONE = "gone"


@dataclass(frozen=True)
class Outcome:
    """The result of :func:`consume`."""

    verdict: Verdict
    #: The record as it now stands (after the rotation, for ``ROTATED``).
    record: SessionRecord
    #: What the holder receives: the successor (``ROTATED``, ``REPLAYED``).
    successor: Mapping[str, str] | None = None


def new_secret() -> str:
    """Return a new random secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def initial_fields(secret: str, now: float) -> dict[str, str]:
    """Return the rotation fields of a record whose first secret is ``secret``."""
    return {
        CURRENT: json.dumps(hash_token(secret)),
        PREVIOUS: json.dumps(""),
        ROTATED_AT: json.dumps(now),
        SEALED: json.dumps(""),
    }


def consume(
    store: SessionStore,
    record: SessionRecord,
    presented: str,
    *,
    now: float,
    grace: float,
    make_successor: Callable[[], dict[str, str]],
    update: Callable[[SessionRecord], None] = lambda record: None,
) -> Outcome:
    """Present ``presented`` to the series or family ``record``.

    ``make_successor`` returns what a rotation hands out; its ``"secret"``
    becomes the record's current secret. ``update`` may change the record's
    other fields (meta, expiry) in the same compare-and-set. Another request's
    rotation that wins the race is followed, not fought.
    """
    for _ in range(3):
        current, previous, rotated_at, sealed = _state(record)
        presented_hash = hash_token(presented)
        if current and hmac.compare_digest(presented_hash, current):
            successor = make_successor()
            rotated = dataclasses.replace(record, meta=dict(record.meta))
            rotated.data = {
                CURRENT: json.dumps(hash_token(successor["secret"])),
                PREVIOUS: json.dumps(current),
                ROTATED_AT: json.dumps(now),
                SEALED: json.dumps(_seal(presented, successor)),
            }
            update(rotated)
            changed_meta = {k for k in rotated.meta if rotated.meta[k] != record.meta.get(k)}
            held_in = CURRENT if CURRENT in record.data else _LEGACY_CURRENT
            if store.save(
                rotated,
                FIELDS | {_LEGACY_CURRENT},  # a legacy field goes with the first rotation
                changed_meta=changed_meta,
                expect=(held_in, record.data[held_in]),
            ):
                return Outcome(Verdict.ROTATED, rotated, successor)
            found = store.get(record.key)  # rotated (or ended) meanwhile: look again
            if found is None:
                return Outcome(Verdict.GONE, record)
            record = found
            continue
        if previous and hmac.compare_digest(presented_hash, previous) and now - rotated_at <= grace:
            unsealed = _unseal(presented, sealed)
            if unsealed is not None:
                return Outcome(Verdict.REPLAYED, record, unsealed)
        return Outcome(Verdict.STOLEN, record)
    return Outcome(Verdict.STOLEN, record)


def holds_secret(record: SessionRecord, presented: str) -> bool:
    """Tell whether ``presented`` is the record's current or previous secret."""
    current, previous, _, _ = _state(record)
    presented_hash = hash_token(presented)
    return any(
        known and hmac.compare_digest(presented_hash, known) for known in (current, previous)
    )


def _state(record: SessionRecord) -> tuple[str, str, float, str]:
    current = record.data.get(CURRENT, record.data.get(_LEGACY_CURRENT, '""'))
    try:
        return (
            str(json.loads(current)),
            str(json.loads(record.data.get(PREVIOUS, '""'))),
            float(json.loads(record.data.get(ROTATED_AT, "0"))),
            str(json.loads(record.data.get(SEALED, '""'))),
        )
    except (ValueError, TypeError):
        return "", "", 0.0, ""


def _seal(spent: str, successor: Mapping[str, str]) -> str:
    """Encrypt ``successor`` with a key only the holder of ``spent`` has."""
    nonce = secrets.token_bytes(12)
    plain = json.dumps(dict(successor), separators=(",", ":")).encode()
    sealed = AESGCM(_sealing_key(spent)).encrypt(nonce, plain, None)
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _unseal(spent: str, sealed: str) -> dict[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        plain = AESGCM(_sealing_key(spent)).decrypt(raw[:12], raw[12:], None)
        value = json.loads(plain)
    except (InvalidTag, ValueError, UnicodeError):
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return value


def _sealing_key(secret: str) -> bytes:
    return hashlib.sha256(b"coatcheck.rotation.successor\0" + secret.encode("utf-8")).digest()
