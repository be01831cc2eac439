"""The one rotation protocol, on its own: verdicts, the compare-and-set, the sealed successor."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coatcheck.auth import rotation
from coatcheck.auth.rotation import CURRENT, PREVIOUS, ROTATED_AT, SEALED, Verdict
from coatcheck.auth.services import Services
from coatcheck.core.ids import hash_token
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.stores.base import SessionStore

NOW = 1_800_000_000.0
GRACE = 30.0
FIRST = "a" * 43
SECOND = "b" * 43
THIRD = "c" * 43


def _successor(secret: str, **more: str) -> Callable[[], dict[str, str]]:
    return lambda: {"secret": secret, **more}


def _record(data: dict[str, str], meta: dict[str, object] | None = None) -> SessionRecord:
    return SessionRecord(
        key=RecordKind.REMEMBER.key("series"),
        handle="0" * 32,
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW + 86400,
        user_id="7",
        data=data,
        meta=dict(meta or {"stamp": 0, "ip": "192.0.2.1"}),
        kind=RecordKind.REMEMBER,
    )


def _stored(store: SessionStore, record: SessionRecord) -> SessionRecord:
    store.save(record)
    return record


def _sealing_key(secret: str) -> bytes:
    return hashlib.sha256(b"coatcheck.rotation.successor\0" + secret.encode()).digest()


def _seal(secret: str, plain: bytes) -> str:
    nonce = bytes(12)
    sealed = AESGCM(_sealing_key(secret)).encrypt(nonce, plain, None)
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def _unseal(secret: str, sealed: str) -> bytes:
    raw = base64.urlsafe_b64decode(sealed)
    return AESGCM(_sealing_key(secret)).decrypt(raw[:12], raw[12:], None)


def _consume(
    store: SessionStore, record: SessionRecord, presented: str, **options: object
) -> rotation.Outcome:
    values: dict[str, object] = {
        "now": NOW + 10,
        "grace": GRACE,
        "make_successor": _successor(SECOND),
    }
    values.update(options)
    return rotation.consume(store, record, presented, **values)  # type: ignore[arg-type]


@pytest.fixture
def store(services: Services) -> SessionStore:
    return services.store


def test_initial_fields_are_exact() -> None:
    assert rotation.initial_fields(FIRST, NOW) == {
        CURRENT: json.dumps(hash_token(FIRST)),
        PREVIOUS: '""',
        ROTATED_AT: "1800000000.0",
        SEALED: '""',
    }


def test_the_current_secret_rotates_and_the_record_is_stored_exactly(
    store: SessionStore,
) -> None:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))
    outcome = _consume(store, record, FIRST, make_successor=_successor(SECOND, sid="s"))
    assert outcome.verdict is Verdict.ROTATED
    assert outcome.successor == {"secret": SECOND, "sid": "s"}
    stored = store.get(record.key)
    assert stored is not None and outcome.record.data == stored.data
    assert json.loads(stored.data[CURRENT]) == hash_token(SECOND)
    assert json.loads(stored.data[PREVIOUS]) == hash_token(FIRST)
    assert json.loads(stored.data[ROTATED_AT]) == NOW + 10
    # Only the holder of the spent secret can open the successor; compact JSON inside.
    sealed = json.loads(stored.data[SEALED])
    assert _unseal(FIRST, sealed) == b'{"secret":"' + SECOND.encode() + b'","sid":"s"}'
    assert len(base64.urlsafe_b64decode(sealed)) == 12 + len(b'{"secret":"","sid":"s"}') + 43 + 16


def test_update_changes_meta_in_the_same_write_and_leaves_the_given_record_alone(
    store: SessionStore,
) -> None:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))

    def update(rotated: SessionRecord) -> None:
        rotated.meta["roles"] = ["admin"]
        rotated.last_seen_at = NOW + 10

    outcome = _consume(store, record, FIRST, update=update)
    assert outcome.verdict is Verdict.ROTATED
    assert record.meta == {"stamp": 0, "ip": "192.0.2.1"}
    assert outcome.record.meta == {"stamp": 0, "ip": "192.0.2.1", "roles": ["admin"]}
    stored = store.get(record.key)
    assert stored is not None
    assert stored.meta == {"stamp": 0, "ip": "192.0.2.1", "roles": ["admin"]}
    assert stored.last_seen_at == NOW + 10


def test_a_rotation_does_not_undo_meta_written_meanwhile(store: SessionStore) -> None:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))
    stale = dataclasses.replace(record, meta=dict(record.meta))
    record.meta["stamp"] = 99  # restamped by the device that revoked the rest
    store.save(record, set(), changed_meta={"stamp"})
    outcome = _consume(store, stale, FIRST)
    assert outcome.verdict is Verdict.ROTATED
    stored = store.get(record.key)
    assert stored is not None and stored.meta["stamp"] == 99


def test_a_rotation_that_lost_the_race_answers_with_the_winners_successor(
    store: SessionStore,
) -> None:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))
    stale = dataclasses.replace(record, data=dict(record.data), meta=dict(record.meta))
    won = _consume(store, record, FIRST, make_successor=_successor(SECOND))
    lost = _consume(store, stale, FIRST, make_successor=_successor(THIRD), now=NOW + 11)
    assert won.verdict is Verdict.ROTATED
    assert lost.verdict is Verdict.REPLAYED
    assert lost.successor == {"secret": SECOND}
    stored = store.get(record.key)
    assert stored is not None and lost.record.data == stored.data
    assert json.loads(stored.data[CURRENT]) == hash_token(SECOND)


def test_a_rotation_of_a_record_ended_meanwhile_is_gone_not_theft(store: SessionStore) -> None:
    record = _record(rotation.initial_fields(FIRST, NOW))  # never stored: ended
    outcome = _consume(store, record, FIRST)
    assert outcome.verdict is Verdict.GONE and Verdict.GONE.value == "gone"
    assert outcome.record is record and outcome.successor is None
    assert store.get(record.key) is None


def test_a_wrong_secret_for_a_record_ended_meanwhile_is_still_theft(store: SessionStore) -> None:
    record = _record(rotation.initial_fields(FIRST, NOW))  # never stored: ended
    outcome = _consume(store, record, SECOND)
    assert outcome.verdict is Verdict.STOLEN
    assert outcome.record is record and outcome.successor is None


def test_three_lost_races_in_a_row_are_theft(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))
    saves: list[SessionRecord] = []

    def lose(saved: SessionRecord, *args: object, **kwargs: object) -> bool:
        saves.append(saved)
        return False

    monkeypatch.setattr(store, "save", lose)
    monkeypatch.setattr(store, "get", lambda key: record)
    outcome = _consume(store, record, FIRST)
    assert len(saves) == 3
    assert outcome.verdict is Verdict.STOLEN
    assert outcome.record is record and outcome.successor is None


def _rotated_once(store: SessionStore) -> SessionRecord:
    record = _stored(store, _record(rotation.initial_fields(FIRST, NOW)))
    return _consume(store, record, FIRST, now=NOW).record


@pytest.mark.parametrize("later", [0.0, GRACE])
def test_the_previous_secret_within_the_grace_window_is_a_replay(
    store: SessionStore, later: float
) -> None:
    record = _rotated_once(store)
    outcome = _consume(store, record, FIRST, now=NOW + later, make_successor=_successor(THIRD))
    assert outcome.verdict is Verdict.REPLAYED
    assert outcome.record is record
    assert outcome.successor == {"secret": SECOND}


def test_the_previous_secret_after_the_grace_window_is_theft(store: SessionStore) -> None:
    record = _rotated_once(store)
    outcome = _consume(store, record, FIRST, now=NOW + GRACE + 0.001)
    assert outcome.verdict is Verdict.STOLEN
    assert outcome.record is record and outcome.successor is None


def test_an_unknown_secret_is_theft(store: SessionStore) -> None:
    record = _rotated_once(store)
    outcome = _consume(store, record, THIRD)
    assert outcome.verdict is Verdict.STOLEN
    assert outcome.record is record and outcome.successor is None


def _replay_of(store: SessionStore, sealed_plain: bytes) -> rotation.Outcome:
    record = _record(
        {
            CURRENT: json.dumps(hash_token(SECOND)),
            PREVIOUS: json.dumps(hash_token(FIRST)),
            ROTATED_AT: json.dumps(NOW),
            SEALED: json.dumps(_seal(FIRST, sealed_plain)),
        }
    )
    return _consume(store, _stored(store, record), FIRST)


def test_a_successor_sealed_under_the_spent_secret_is_opened(store: SessionStore) -> None:
    outcome = _replay_of(store, b'{"secret": "x", "sid": "y"}')
    assert outcome.verdict is Verdict.REPLAYED
    assert outcome.successor == {"secret": "x", "sid": "y"}


@pytest.mark.parametrize(
    "plain", [b'["x"]', b'"x"', b'{"secret": 1}', b'{"secret": null}', b"not json", b"\xff"]
)
def test_a_sealed_successor_of_the_wrong_shape_is_theft(store: SessionStore, plain: bytes) -> None:
    outcome = _replay_of(store, plain)
    assert outcome.verdict is Verdict.STOLEN and outcome.successor is None


@pytest.mark.parametrize("missing", [PREVIOUS, ROTATED_AT, SEALED])
def test_a_record_missing_a_field_it_does_not_need_still_rotates(
    store: SessionStore, missing: str
) -> None:
    data = rotation.initial_fields(FIRST, NOW)
    del data[missing]
    outcome = _consume(store, _stored(store, _record(data)), FIRST)
    assert outcome.verdict is Verdict.ROTATED


def test_a_record_missing_its_current_secret_still_replays_the_previous_one(
    store: SessionStore,
) -> None:
    record = _rotated_once(store)
    data = dict(record.data)
    del data[CURRENT]
    outcome = _consume(store, _stored(store, _record(data)), FIRST)
    assert outcome.verdict is Verdict.REPLAYED
    assert outcome.successor == {"secret": SECOND}


@pytest.mark.parametrize("broken", [CURRENT, PREVIOUS, ROTATED_AT, SEALED])
def test_a_record_with_a_damaged_field_opens_for_nobody(store: SessionStore, broken: str) -> None:
    record = _rotated_once(store)
    data = dict(record.data)
    data[broken] = "not json" if broken != ROTATED_AT else '"soon"'
    damaged = _stored(store, _record(data))
    for secret in (FIRST, SECOND):
        assert _consume(store, damaged, secret).verdict is Verdict.STOLEN
        assert not rotation.holds_secret(damaged, secret)


def test_holds_secret_knows_the_current_and_previous_secrets_only(store: SessionStore) -> None:
    fresh = _record(rotation.initial_fields(FIRST, NOW))
    assert rotation.holds_secret(fresh, FIRST)
    assert not rotation.holds_secret(fresh, SECOND)
    assert not rotation.holds_secret(fresh, "")
    record = _rotated_once(store)
    assert rotation.holds_secret(record, FIRST)
    assert rotation.holds_secret(record, SECOND)
    assert not rotation.holds_secret(record, THIRD)


def test_new_secrets_are_256_bits_url_safe() -> None:
    secret = rotation.new_secret()
    assert len(secret) == 43
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret != rotation.new_secret()
