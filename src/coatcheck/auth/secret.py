"""One signing key for every instance that shares a store.

Instances behind one load balancer must sign with the same ``SECRET_KEY``: a
CSRF cookie, remember-me cookie or access token signed by one is checked by
another. When each instance generates its own key, everything signed fails on
the other instances, and nothing says why.

So an instance on a shared store records a *fingerprint* of its signing key
in the store the first time (an HMAC of a fixed label under the key: the key
itself never leaves the process), and an instance whose key gives another
fingerprint refuses to start. An instance that lists the recorded key among
its ``SECRET_KEY_FALLBACKS`` is rotating: it starts, and records its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..core.clock import Clock
from ..core.errors import ConfigurationError, StoreUnavailable
from ..core.ids import new_handle
from ..core.records import RecordKind, SessionRecord
from ..stores.base import SessionStore

#: What the fingerprint is an HMAC of; never changes, or every deployment breaks.
LABEL = b"coatcheck signing-key fingerprint v1"
#: The store key of the fingerprint record (a stamp-kind record with no user;
#: user IDs are numbers, so this name addresses no user's stamp).
RECORD_NAME = "signing-key-fingerprint"
_FIELD = "fingerprint"
#: The record is refreshed at every start; ten years keeps it through any pause.
_LIFETIME = 10 * 365 * 86400.0
_ATTEMPTS = 10

log = logging.getLogger("coatcheck")


def is_shared_store(url: str) -> bool:
    """Tell whether instances with instance folders of their own may share this store."""
    return urlsplit(url).scheme.lower().startswith(("redis", "rediss"))


def check_shared_signing_key(
    store_url: str, store: SessionStore, clock: Clock, keys: Sequence[bytes]
) -> None:
    """Run :func:`check_signing_key` when the store is shared (Redis).

    A store that cannot be reached at start is not a reason to refuse it
    (requests fail closed with 503 until it is back): the check is skipped
    with a warning.
    """
    if not is_shared_store(store_url):
        return
    try:
        check_signing_key(store, clock, keys)
    except StoreUnavailable as exc:
        log.warning("coatcheck: could not compare SECRET_KEY with the store's: %s", exc)


def key_fingerprint(key: bytes) -> str:
    """Return the fingerprint of a signing key: an HMAC of :data:`LABEL`, never the key."""
    return hmac.new(key, LABEL, hashlib.sha256).hexdigest()[:32]


def recorded_fingerprint(store: SessionStore) -> str | None:
    """Return the fingerprint recorded in ``store``, or ``None`` (nothing written)."""
    record = store.get(RecordKind.STAMP.key(RECORD_NAME))
    return record.data.get(_FIELD) if record is not None else None


def check_signing_key(store: SessionStore, clock: Clock, keys: Sequence[bytes]) -> None:
    """Record the signing key's fingerprint in a shared store, or refuse another key.

    :param keys: oldest first, the signing key last (as from
        :func:`~coatcheck.core.signing.signing_keys`).
    :raise ConfigurationError: when the store holds the fingerprint of a key
        that is neither the signing key nor one of its fallbacks.
    """
    mine = key_fingerprint(keys[-1])
    accepted = {key_fingerprint(k) for k in keys}
    key = RecordKind.STAMP.key(RECORD_NAME)
    for _ in range(_ATTEMPTS):
        now = clock()
        stored = store.get(key)
        if stored is None:
            record = SessionRecord(
                key=key,
                handle=new_handle(),
                created_at=now,
                last_seen_at=now,
                expires_at=now + _LIFETIME,
                data={_FIELD: mine},
                kind=RecordKind.STAMP,
            )
            if store.add(record):
                return
            continue
        theirs = stored.data.get(_FIELD, "")
        seen = theirs.encode("utf-8", "surrogatepass")
        if hmac.compare_digest(seen, mine.encode()):  # not a secret, compared like one anyway
            return
        if not any(hmac.compare_digest(seen, one.encode()) for one in accepted):
            raise ConfigurationError(_mismatch(theirs, mine))
        update = dataclasses.replace(
            stored, last_seen_at=now, expires_at=now + _LIFETIME, data={_FIELD: mine}
        )
        if store.save(update, {_FIELD}, expect=(_FIELD, theirs)):
            return
    raise ConfigurationError("the signing key's fingerprint could not be recorded (contention)")


def _mismatch(theirs: str, mine: str) -> str:
    return (
        "SECRET_KEY differs from the one the other instances on this session store sign "
        f"with (fingerprint {mine[:12]}, the store has {theirs[:12]}): cookies and tokens "
        "signed by one instance would fail on the other, CSRF checks first. Set the same "
        "SECRET_KEY on every instance (not one generated per instance folder). To rotate "
        "the key, give the new SECRET_KEY with the old one in SECRET_KEY_FALLBACKS."
    )
