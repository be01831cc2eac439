"""A user's devices with no app: exact listings, revocation, carrying over, restamping."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from coatcheck.auth.assurance import Assurance
from coatcheck.auth.client import Client
from coatcheck.auth.devices import Device, DeviceSession, iso_time
from coatcheck.auth.services import Services, build_services
from coatcheck.auth.sessions import SERIES_KEY
from coatcheck.auth.stamps import STAMP
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import TokenError
from coatcheck.core.ids import new_session_id, store_key
from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.core.settings import Settings

from ..conftest import TEST_SECRET_KEY

PASSWORD = "correct horse battery"
HERE = Client(ip="192.0.2.1", user_agent="test agent")
ADMIN = Client(ip="198.51.100.7", user_agent="admin agent")
NOW = 1_800_000_000.0


@dataclass
class World:
    """Alice's devices: a session logged in by series ``linked``, another series, a family."""

    user_id: str
    session: SessionRecord
    linked: SessionRecord
    series: SessionRecord
    family: SessionRecord
    refresh_token: str
    linked_cookie: str


def _get(services: Services, key: str) -> SessionRecord:
    record = services.store.get(key)
    assert record is not None
    return record


def _new_session(services: Services, user_id: str, stamp: int, **meta: object) -> SessionRecord:
    now = services.clock()
    record = services.lifetimes.new_record(
        store_key(new_session_id()),
        now,
        user_id=user_id,
        meta={STAMP: stamp, "ip": "192.0.2.1", "user_agent": "test agent", **meta},
    )
    services.store.save(record)
    return record


@pytest.fixture
def world(services: Services, clock: ManualClock) -> World:
    clock.now = NOW
    user = services.accounts.create_user("alice", PASSWORD, roles=["a"])
    user_id = str(user.id)
    linked = services.remember.issue(user_id, 0, HERE)
    clock.advance(1)
    session = _new_session(services, user_id, 0, **{SERIES_KEY: linked.key})
    clock.advance(1)
    series = services.remember.issue(user_id, 0, Client(ip="192.0.2.2", user_agent="other"))
    clock.advance(1)
    pair = services.tokens.issue(user, 0, HERE)
    family = _get(services, RecordKind.TOKEN_FAMILY.key(pair["refresh_token"].split(".")[0]))
    clock.advance(1)
    return World(
        user_id,
        session,
        _get(services, linked.key),
        _get(services, series.key),
        family,
        pair["refresh_token"],
        linked.cookie,
    )


def _last_event(services: Services) -> object:
    return services.users.list_events(limit=1)[0]


def test_of_user_lists_each_device_exactly(services: Services, world: World) -> None:
    listed = services.devices.of_user(int(world.user_id), world.session.handle)
    assert listed == [
        DeviceSession(
            world.session.handle,
            "session",
            world.user_id,
            NOW + 1,
            NOW + 1,
            world.session.expires_at,
            "192.0.2.1",
            "test agent",
            True,
            Assurance.password(NOW + 1),
        ),
        DeviceSession(
            world.series.handle,
            "remember",
            world.user_id,
            NOW + 2,
            NOW + 2,
            NOW + 2 + services.settings.remember_lifetime,
            "192.0.2.2",
            "other",
            False,
            Assurance.password(NOW + 2),
        ),
        DeviceSession(
            world.family.handle,
            "token",
            world.user_id,
            NOW + 3,
            NOW + 3,
            world.family.expires_at,
            "192.0.2.1",
            "test agent",
            False,
            Assurance.password(NOW + 3),
        ),
    ]
    assert services.devices.count(world.user_id) == 4  # the linked series counts, unlisted


def test_a_device_in_json_has_iso_times_in_utc() -> None:
    device = DeviceSession(
        "h",
        "session",
        "1",
        0.0,
        86399.5,
        1_800_000_000.0,
        None,
        "ua",
        True,
        Assurance.of(("pwd", "otp"), 60.5),
    )
    assert device.to_json() == {
        "handle": "h",
        "kind": "session",
        "created_at": "1970-01-01T00:00:00Z",
        "last_seen_at": "1970-01-01T23:59:59Z",
        "expires_at": "2027-01-15T08:00:00Z",
        "ip": None,
        "user_agent": "ua",
        "current": True,
        "aal": 2,
        "amr": ["pwd", "otp"],
        "authenticated_at": "1970-01-01T00:01:00Z",
    }
    assert iso_time(1_234_567_890) == "2009-02-13T23:31:30Z"


def test_a_series_is_listed_when_no_listed_session_links_it(
    services: Services, world: World
) -> None:
    services.store.delete(world.session.key)
    kinds = [(d.handle, d.kind) for d in services.devices.of_user(world.user_id)]
    assert kinds == [
        (world.linked.handle, "remember"),
        (world.series.handle, "remember"),
        (world.family.handle, "token"),
    ]


def test_expired_sessions_and_records_born_before_the_stamp_are_not_listed(
    services: Services, world: World, clock: ManualClock
) -> None:
    clock.advance(services.lifetimes.idle_timeout)  # the session idled out; the rest live
    handles = [d.handle for d in services.devices.of_user(world.user_id)]
    assert handles == [world.linked.handle, world.series.handle, world.family.handle]
    services.stamps.bump(world.user_id)  # born before it: dead, though not deleted yet
    assert services.devices.of_user(world.user_id) == []
    assert services.devices.count(world.user_id) == 0


def test_everyone_lists_users_devices_only(services: Services, world: World) -> None:
    anonymous = services.lifetimes.new_record(store_key(new_session_id()), NOW + 4)
    services.store.save(anonymous)
    listed = services.devices.everyone(current_handle=world.family.handle)
    assert sorted((d.handle, d.kind, d.current) for d in listed) == sorted(
        [
            (world.session.handle, "session", False),
            (world.series.handle, "remember", False),
            (world.family.handle, "token", True),
        ]
    )
    services.store.delete(anonymous.key)
    if not services.settings.store_url.startswith("redis"):
        # A shared Redis store also holds the signing key's fingerprint, a record of no
        # user, which SCAN may return first: see the strict xfail below.
        assert len(services.devices.everyone(limit=1)) == 1


def test_everyone_counts_its_limit_in_devices_not_in_store_records(
    services: Services, world: World
) -> None:
    services.stamps.bump("99")  # another user's stamp record, seen last
    assert len(services.devices.everyone()) == 3
    one = services.devices.everyone(limit=1)
    assert len(one) == 1
    if not services.settings.store_url.startswith("redis"):  # Redis lists in SCAN order
        assert [d.handle for d in one] == [world.family.handle]


def test_everyone_lists_a_thousand_devices_by_default(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings.from_config(
        {"COATCHECK_STORE_URL": "memory://", "COATCHECK_DATABASE_URL": "sqlite://"},
        instance_path=str(tmp_path),
    )
    services = build_services(
        settings, secret_key=TEST_SECRET_KEY, hasher=PasswordHasher.fast_for_tests(), clock=clock
    )
    for _ in range(1001):
        _new_session(services, "1", 0)
    assert len(services.devices.everyone()) == 1000
    services.close()


def test_revoke_ends_the_device_with_that_handle_only_and_is_audited(
    services: Services, world: World
) -> None:
    assert services.devices.revoke(int(world.user_id), world.family.handle, client=ADMIN)
    assert services.store.get(world.family.key) is None
    assert services.store.get(world.session.key) is not None
    assert services.store.get(world.series.key) is not None
    event = _last_event(services)
    assert event.event == "session_revoked"  # type: ignore[attr-defined]
    assert event.user_id == int(world.user_id)  # type: ignore[attr-defined]
    assert event.ip == "198.51.100.7"  # type: ignore[attr-defined]
    assert event.detail == {"handle": world.family.handle}  # type: ignore[attr-defined]


def test_revoke_of_an_unknown_handle_or_another_users_device_is_refused(
    services: Services, world: World
) -> None:
    events = services.users.count_events()
    assert services.devices.revoke(world.user_id, "0" * 32) is False
    assert services.devices.revoke("999", world.family.handle) is False
    assert services.devices.count(world.user_id) == 4
    assert services.users.count_events() == events


def test_revoking_a_session_ends_the_series_that_logged_it_in(
    services: Services, world: World
) -> None:
    other = _new_session(services, world.user_id, 0, **{SERIES_KEY: world.linked.key})
    assert services.devices.revoke(world.user_id, world.session.handle)
    assert services.store.get(world.session.key) is None
    assert services.store.get(world.linked.key) is None
    assert services.store.get(other.key) is None  # logged in by the same series
    assert services.store.get(world.series.key) is not None
    assert services.remember.use(world.linked_cookie, HERE) is None


def test_revoking_a_series_ends_the_sessions_it_logged_in(services: Services, world: World) -> None:
    services.store.delete(world.session.key)
    other = _new_session(services, world.user_id, 0, **{SERIES_KEY: world.linked.key})
    assert services.devices.revoke(world.user_id, world.linked.handle)
    assert services.store.get(world.linked.key) is None
    assert services.store.get(other.key) is None
    assert services.store.get(world.series.key) is not None


def test_revoke_others_keeps_the_device_under_the_new_stamp_and_is_audited(
    services: Services, world: World
) -> None:
    keep = Device(session_key=world.session.key, series_key=world.linked.key)
    revoked, stamp = services.devices.revoke_others(world.user_id, keep, client=HERE)
    assert revoked == 2 and stamp == services.stamps.current(world.user_id)
    assert _get(services, world.session.key).meta[STAMP] == stamp
    assert _get(services, world.linked.key).meta[STAMP] == stamp
    assert services.store.get(world.series.key) is None
    assert services.store.get(world.family.key) is None
    assert services.sessions.is_current(_get(services, world.session.key))
    assert services.remember.use(world.linked_cookie, HERE) is not None
    event = _last_event(services)
    assert event.event == "all_sessions_revoked"  # type: ignore[attr-defined]
    assert event.user_id == int(world.user_id)  # type: ignore[attr-defined]
    assert event.ip == "192.0.2.1"  # type: ignore[attr-defined]
    assert event.detail == {"revoked": 2}  # type: ignore[attr-defined]


def test_revoke_others_can_keep_a_token_family(services: Services, world: World) -> None:
    revoked, stamp = services.devices.revoke_others(
        world.user_id, Device(family_key=world.family.key)
    )
    assert revoked == 3 and stamp == services.stamps.current(world.user_id)
    assert _get(services, world.family.key).meta == {
        **world.family.meta,
        STAMP: stamp,
        "roles": ["a"],
    }
    assert services.tokens.refresh(world.refresh_token, HERE)["refresh_token"]
    assert [r.key for r in services.store.list_by_user(world.user_id)] == [world.family.key]


def test_a_family_cannot_be_kept_by_its_public_handle(services: Services, world: World) -> None:
    revoked, stamp = services.devices.revoke_others(
        world.user_id, Device(family_key=world.family.handle)
    )
    assert (revoked, stamp) == (4, services.stamps.current(world.user_id))
    assert services.store.list_by_user(world.user_id) == []  # a handle is no store key


def test_revoke_everything_returns_the_stamp_only_when_it_keeps_something(
    services: Services, world: World
) -> None:
    stamp = services.devices.revoke_everything(world.user_id)
    assert stamp is None and services.stamps.current(world.user_id) > 0
    assert services.store.list_by_user(world.user_id) == []


def test_the_kept_device_takes_the_roles_read_after_the_stamp_moved(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_bump = services.stamps.bump

    def bump_then_promote(user_id: str | int) -> tuple[int, int]:
        moved = real_bump(user_id)
        services.users.set_roles(int(world.user_id), ["z", "b", "z"])  # raced the move
        return moved

    monkeypatch.setattr(services.stamps, "bump", bump_then_promote)
    keep = Device(world.session.key, world.linked.key, world.family.key)
    stamp = services.devices.revoke_everything(world.user_id, keep=keep)
    assert stamp is not None and stamp == services.stamps.current(world.user_id)
    for record in (world.session, world.family):
        assert _get(services, record.key).meta == {**record.meta, STAMP: stamp, "roles": ["b", "z"]}
    assert _get(services, world.linked.key).meta == {**world.linked.meta, STAMP: stamp}
    assert services.store.get(world.series.key) is None
    keys = {r.key for r in services.store.list_by_user(world.user_id)}
    assert keys == keep.store_keys()


@pytest.mark.parametrize("gone", [False, True])
def test_nothing_is_kept_for_a_user_disabled_or_gone_when_the_stamp_moved(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch, gone: bool
) -> None:
    real_bump = services.stamps.bump

    def bump_then_disable(user_id: str | int) -> tuple[int, int]:
        moved = real_bump(user_id)
        if gone:
            services.user_loader = lambda user_id: None
        else:
            services.users.set_disabled(int(world.user_id), True)
        return moved

    monkeypatch.setattr(services.stamps, "bump", bump_then_disable)
    keep = Device(world.session.key, world.linked.key, world.family.key)
    revoked, stamp = services.devices.revoke_others(world.user_id, keep, client=HERE)
    assert (revoked, stamp) == (1, None)
    assert services.store.list_by_user(world.user_id) == []
    assert _last_event(services).detail == {"revoked": 1}  # type: ignore[attr-defined]


def test_revoke_all_ends_everything_and_is_audited(services: Services, world: World) -> None:
    assert services.devices.revoke_all(int(world.user_id), client=ADMIN) == 4
    assert services.store.list_by_user(world.user_id) == []
    with pytest.raises(TokenError):
        services.tokens.refresh(world.refresh_token, HERE)
    event = _last_event(services)
    assert event.event == "all_sessions_revoked"  # type: ignore[attr-defined]
    assert event.user_id == int(world.user_id)  # type: ignore[attr-defined]
    assert event.ip == "198.51.100.7"  # type: ignore[attr-defined]
    assert event.detail == {"revoked": 4}  # type: ignore[attr-defined]


def test_carry_over_moves_live_records_only_and_gives_them_the_roles(
    services: Services, world: World, clock: ManualClock
) -> None:
    services.stamps.bump(world.user_id)  # everything so far is dead
    clock.advance(1)
    live = _new_session(services, world.user_id, services.stamps.current(world.user_id))
    stamp = services.devices.carry_over(world.user_id, ["x", "y"])
    assert stamp == services.stamps.current(world.user_id)
    moved = _get(services, live.key)
    assert moved.meta[STAMP] == stamp and moved.meta["roles"] == ["x", "y"]
    for dead in (world.session, world.linked, world.series, world.family):
        assert _get(services, dead.key).meta == dead.meta


def test_carry_over_gives_roles_to_sessions_and_families_not_series(
    services: Services, world: World
) -> None:
    stamp = services.devices.carry_over(world.user_id, ["x"])
    for record in (world.session, world.family):
        assert _get(services, record.key).meta == {**record.meta, STAMP: stamp, "roles": ["x"]}
    for record in (world.linked, world.series):
        assert _get(services, record.key).meta == {**record.meta, STAMP: stamp}
    assert services.tokens.verify(services.tokens.refresh(world.refresh_token)["access_token"])


def test_carry_over_never_undoes_a_refresh_that_raced_it(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = services.store.list_by_user(world.user_id)
    second = services.tokens.refresh(world.refresh_token, HERE)
    monkeypatch.setattr(services.store, "list_by_user", lambda user_id: stale)
    services.devices.carry_over(world.user_id, ["x"])
    monkeypatch.undo()
    family = _get(services, world.family.key)
    assert family.meta["roles"] == ["x"]
    assert services.tokens.refresh(second["refresh_token"], HERE)["refresh_token"]


def test_restamping_a_kept_session_never_undoes_a_write_that_raced_it(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = _get(services, world.session.key)
    written = dataclasses.replace(stale, data={"cart": json.dumps([1])})
    services.store.save(written, {"cart"})
    real_get = services.store.get
    monkeypatch.setattr(
        services.store,
        "get",
        lambda key: (
            dataclasses.replace(stale, meta=dict(stale.meta)) if key == stale.key else real_get(key)
        ),
    )
    stamp = services.devices.revoke_everything(world.user_id, keep=Device(session_key=stale.key))
    monkeypatch.undo()
    record = _get(services, world.session.key)
    assert record.data == {"cart": "[1]"} and record.meta[STAMP] == stamp


def test_restamping_a_kept_session_that_ended_meanwhile_does_not_revive_it(
    services: Services, world: World
) -> None:
    services.store.delete(world.session.key)
    services.devices.revoke_everything(world.user_id, keep=Device(session_key=world.session.key))
    assert services.store.list_by_user(world.user_id) == []


def test_device_store_keys() -> None:
    assert Device().store_keys() == set()
    assert Device("s", "r", "f").store_keys() == {"s", "r", "f"}
    assert Device(family_key="f").store_keys() == {"f"}
    assert Device(series_key="r").store_keys() == {"r"}
    assert Device(session_key="s").store_keys() == {"s"}
    assert Device(session_key="s", family_key="f").store_keys() == {"s", "f"}


def test_a_user_loaded_without_a_disabled_flag_keeps_the_device(
    services: Services, world: World
) -> None:
    services.user_loader = lambda user_id: SimpleNamespace(id=1, username="alice", roles=("q",))
    keep = Device(session_key=world.session.key)
    stamp = services.devices.revoke_everything(world.user_id, keep=keep)
    assert stamp is not None and stamp == services.stamps.current(world.user_id)
    assert _get(services, world.session.key).meta == {
        **world.session.meta,
        STAMP: stamp,
        "roles": ["q"],
    }
    assert [r.key for r in services.store.list_by_user(world.user_id)] == [world.session.key]


def test_carrying_skips_what_is_missing_or_no_device_and_carries_the_rest(
    services: Services, world: World
) -> None:
    _, stamp = services.stamps.bump(world.user_id)
    stamp_key = RecordKind.STAMP.key(world.user_id)
    before = _get(services, stamp_key)
    missing = {RecordKind.SESSION.key(f"gone-{n}") for n in range(20)}
    present = {world.session.key, world.series.key, world.family.key}
    services.devices._carry(missing | {stamp_key} | present, stamp, ["r"])
    for record in (world.session, world.family):
        assert _get(services, record.key).meta == {**record.meta, STAMP: stamp, "roles": ["r"]}
    assert _get(services, world.series.key).meta == {**world.series.meta, STAMP: stamp}
    assert _get(services, stamp_key) == before  # a stamp record is no device
    assert all(services.store.get(key) is None for key in missing)
