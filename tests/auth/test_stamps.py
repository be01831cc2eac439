"""Revocation stamps: exact values, exact expiry, the compare-and-set, damaged records."""

from __future__ import annotations

import dataclasses
import json

import pytest

from coatcheck.auth.services import Services
from coatcheck.auth.stamps import LIFETIME, STAMP, Stamps, born_under, is_current
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import StoreUnavailable
from coatcheck.core.records import RecordKind, SessionRecord

NOW = 1_800_000_000.25


@pytest.fixture
def stamps(services: Services, clock: ManualClock) -> Stamps:
    clock.now = NOW
    return services.stamps


def _stamp_record(services: Services, data: dict[str, str]) -> None:
    services.store.save(
        SessionRecord(
            key=RecordKind.STAMP.key("7"),
            handle="0" * 32,
            created_at=NOW,
            last_seen_at=NOW,
            expires_at=NOW + 3600,
            data=data,
            kind=RecordKind.STAMP,
        )
    )


def test_the_first_stamp_is_the_time_in_milliseconds(stamps: Stamps) -> None:
    assert stamps.bump("7") == (0, 1_800_000_000_250)
    assert stamps.current("7") == 1_800_000_000_250


def test_a_stamp_moves_by_one_within_the_same_millisecond(stamps: Stamps) -> None:
    stamps.bump("7")
    assert stamps.bump("7") == (1_800_000_000_250, 1_800_000_000_251)
    assert stamps.bump("7") == (1_800_000_000_251, 1_800_000_000_252)


def test_a_stamp_jumps_to_the_time_when_the_time_is_ahead(
    stamps: Stamps, clock: ManualClock
) -> None:
    stamps.bump("7")
    clock.advance(2.5)
    assert stamps.bump("7") == (1_800_000_000_250, 1_800_000_002_750)


def test_a_stamp_record_lives_ten_years_from_its_last_move(
    services: Services, stamps: Stamps, clock: ManualClock
) -> None:
    lifetime = 10 * 365 * 86400.0
    assert lifetime == LIFETIME and stamps.lifetime == lifetime
    stamps.bump("7")
    clock.advance(100)
    stamps.bump("7")
    record = services.store.get(RecordKind.STAMP.key("7"))
    assert record is not None
    assert record.kind is RecordKind.STAMP and record.user_id is None
    assert record.created_at == NOW
    assert record.last_seen_at == NOW + 100
    assert record.expires_at == NOW + 100 + lifetime
    assert record.data == {"n": json.dumps(1_800_000_100_250)}


def test_a_stamp_created_by_a_racing_bump_is_moved_past(
    services: Services, stamps: Stamps, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services.store
    real_add = store.add

    def racing_add(record: SessionRecord) -> bool:
        monkeypatch.setattr(store, "add", real_add)
        racer = dataclasses.replace(record, data={"n": json.dumps(1_900_000_000_000)})
        assert real_add(racer)
        return real_add(record)

    monkeypatch.setattr(store, "add", racing_add)
    assert stamps.bump("7") == (1_900_000_000_000, 1_900_000_000_001)
    assert stamps.current("7") == 1_900_000_000_001


def test_a_bump_that_lost_the_compare_and_set_reads_again(
    services: Services, stamps: Stamps, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services.store
    stamps.bump("7")
    stale = store.get(RecordKind.STAMP.key("7"))
    stamps.bump("7")  # another instance moved it meanwhile
    real_get = store.get

    def stale_once(key: str) -> SessionRecord | None:
        monkeypatch.setattr(store, "get", real_get)
        return stale

    monkeypatch.setattr(store, "get", stale_once)
    assert stamps.bump("7") == (1_800_000_000_251, 1_800_000_000_252)
    assert stamps.current("7") == 1_800_000_000_252


def test_a_stamp_that_never_stops_racing_is_a_store_failure(
    services: Services, stamps: Stamps, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps.bump("7")
    saves: list[SessionRecord] = []

    def always_lose(record: SessionRecord, *args: object, **kwargs: object) -> bool:
        saves.append(record)
        return False

    monkeypatch.setattr(services.store, "save", always_lose)
    with pytest.raises(StoreUnavailable) as caught:
        stamps.bump("7")
    assert str(caught.value) == "the revocation stamp could not be moved (too much contention)"
    assert len(saves) == 100


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("not json", 0), ('"12"', 0), ("12.5", 0), ("null", 0), ("[12]", 0)],
)
def test_a_damaged_stamp_reads_as_zero(
    services: Services, stamps: Stamps, text: str, value: int
) -> None:
    _stamp_record(services, {"n": text})
    assert stamps.current("7") == value
    assert type(stamps.current("7")) is int


def test_a_stamp_record_without_its_number_reads_as_zero(
    services: Services, stamps: Stamps
) -> None:
    _stamp_record(services, {})
    assert stamps.current("7") == 0


def test_a_damaged_stamp_is_moved_to_the_time(services: Services, stamps: Stamps) -> None:
    _stamp_record(services, {"n": "not json"})
    assert stamps.bump("7") == (0, 1_800_000_000_250)


def test_a_stamp_record_without_its_number_can_still_be_moved(
    services: Services, stamps: Stamps
) -> None:
    _stamp_record(services, {})
    assert stamps.bump("7") == (0, 1_800_000_000_250)
    record = services.store.get(RecordKind.STAMP.key("7"))
    assert record is not None and record.handle != "0" * 32  # started again
    assert record.data == {"n": json.dumps(1_800_000_000_250)}
    assert record.expires_at == NOW + LIFETIME
    assert stamps.bump("7") == (1_800_000_000_250, 1_800_000_000_251)


def test_stamps_stand_on_a_store_and_a_clock_alone(services: Services, clock: ManualClock) -> None:
    clock.now = NOW
    stamps = Stamps(services.store, clock)
    assert (stamps.store, stamps.clock) == (services.store, clock)
    assert stamps.bump("8") == (0, 1_800_000_000_250)
    assert services.stamps.read("8") == 1_800_000_000_250


def test_read_tells_a_missing_stamp_from_a_stamp(services: Services, stamps: Stamps) -> None:
    assert stamps.read("7") is None and stamps.current("7") == 0
    assert stamps.read(7) is None
    stamps.bump(7)
    assert stamps.read("7") == stamps.read(7) == stamps.current("7") == 1_800_000_000_250
    _stamp_record(services, {"n": "0"})
    assert stamps.read("7") == 0 and type(stamps.read("7")) is int


@pytest.mark.parametrize("text", ["not json", '"12"', "null"])
def test_a_damaged_stamp_is_read_as_zero_not_as_missing(
    services: Services, stamps: Stamps, text: str
) -> None:
    _stamp_record(services, {"n": text})
    assert stamps.read("7") == 0
    _stamp_record(services, {})
    assert stamps.read("7") == 0


@pytest.mark.parametrize(
    ("meta", "born"),
    [({}, 0), ({STAMP: 5}, 5), ({STAMP: True}, 0), ({STAMP: "5"}, 0), ({STAMP: 5.0}, 0)],
)
def test_born_under_reads_only_integers(meta: dict[str, object], born: int) -> None:
    assert born_under(meta) == born


def test_a_record_is_current_under_its_own_stamp_and_older_ones() -> None:
    assert is_current({STAMP: 5}, 5)
    assert is_current({STAMP: 5}, 4)
    assert not is_current({STAMP: 5}, 6)
    assert is_current({}, 0)
    assert not is_current({}, 1)


def test_with_no_stamp_record_only_records_born_under_no_stamp_live() -> None:
    assert is_current({}, None)
    assert is_current({STAMP: 0}, None)
    assert is_current({STAMP: True}, None)  # not a stamp: born under none
    assert not is_current({STAMP: 1}, None)
    assert not is_current({STAMP: 1_800_000_000_250}, None)
