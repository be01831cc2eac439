"""The login throttle's exact waits, keys and connections, on the injected clock."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from limits.storage import MemoryStorage

from coatcheck.auth.throttle import (
    LoginThrottle,
    Refusal,
    _account_key,
    _address_key,
    open_storage,
    ratelimit_url_for,
)
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.settings import Settings
from coatcheck.stores.sqlite_throttle import SQLiteThrottleStorage

NOW = 1_800_000_000.0


@pytest.fixture
def throttle(clock: ManualClock) -> Iterator[LoginThrottle]:
    clock.now = NOW
    opened = LoginThrottle(open_storage("memory://", clock=clock))
    yield opened
    opened.close()


def test_a_registration_refusal_waits_until_the_oldest_registration_leaves_the_window(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    for _ in range(10):
        assert throttle.reserve_registration("192.0.2.1") is None
        clock.advance(10)
    clock.now = NOW + 100
    assert throttle.reserve_registration("192.0.2.1") == Refusal(3500, "register", True)
    assert throttle.reserve_registration("192.0.2.1") == Refusal(3500, "register", False)
    assert throttle.reserve_registration("192.0.2.2") is None  # another address
    clock.now = NOW + 3601  # the first one has left the window
    assert throttle.reserve_registration("192.0.2.1") is None


def test_registration_refusals_are_audited_once_per_address(throttle: LoginThrottle) -> None:
    for address in ("192.0.2.1", "192.0.2.2"):
        for _ in range(10):
            assert throttle.reserve_registration(address) is None
    for address in ("192.0.2.1", "192.0.2.2"):
        refusal = throttle.reserve_registration(address)
        assert refusal is not None and refusal.first


def test_registrations_and_logins_count_apart(throttle: LoginThrottle) -> None:
    for _ in range(10):
        assert throttle.reserve_registration("192.0.2.1") is None
    assert throttle.reserve("192.0.2.1", "192.0.2.1") is None
    for _ in range(4):
        throttle.failed("register", "192.0.2.1")
        assert throttle.reserve("register", "192.0.2.1") is None


def test_a_refusal_waits_at_least_one_second(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(5):
        assert throttle.reserve("alice", "192.0.2.1") is None
        throttle.failed("alice", "192.0.2.1")
    clock.now = NOW + 900 - 0.25
    assert throttle.reserve("alice", "192.0.2.1") == Refusal(1, "pair", True)
    clock.now = NOW + 900 - 1.5
    refusal = throttle.reserve("alice", "192.0.2.1")
    assert refusal is not None and refusal.wait == 2


class _Client:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_close_lets_go_of_the_clients_of_a_limits_storage() -> None:
    storage = MemoryStorage()
    primary, replica = _Client(), _Client()
    storage.storage = primary  # type: ignore[attr-defined] - as limits' Redis storages hold them
    storage.storage_slave = replica  # type: ignore[attr-defined]
    LoginThrottle(storage).close()
    assert (primary.closed, replica.closed) == (1, 1)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("", "unknown"),
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("not an address", "h" + _sha("not an address")),
        ("unix:\udc80", "h" + _sha("unix:\udc80")),
    ],
)
def test_address_keys_are_exact(address: str, key: str) -> None:
    assert _address_key(address) == key


@pytest.mark.parametrize("username", ["alice", " ALICE ", "Ålice\udc80"])
def test_account_keys_are_exact(username: str) -> None:
    assert _account_key(username) == _sha(username.strip().casefold())
    assert len(_account_key(username)) == 32


@pytest.mark.parametrize("scope", ["account", "address"])
def test_each_refused_key_has_its_own_audit_mark(clock: ManualClock, scope: str) -> None:
    clock.now = NOW
    throttle = LoginThrottle(
        open_storage("memory://", clock=clock), ceiling="1/15 minutes", address="1/15 minutes"
    )
    pairs = [("alice", "192.0.2.1"), ("bob", "192.0.2.2")]
    for username, address in pairs:
        assert throttle.reserve(username, address) is None
        throttle.failed(username, address)
    for username, address in pairs:
        other = ("carol", address) if scope == "address" else (username, "198.51.100.1")
        assert throttle.reserve(*other) == Refusal(900, scope, True)
    throttle.close()


@pytest.mark.parametrize(
    ("store_url", "expected"),
    [
        ("sqlite:///", ("memory://", "coatcheck-throttle")),
        (
            "sqlite:////srv/app/s.db",
            ("coatcheck+sqlite:////srv/app/throttle.db", "coatcheck-throttle"),
        ),
        ("memory://", ("memory://", "coatcheck-throttle")),
        ("postgresql://h/db", ("memory://", "coatcheck-throttle")),
        ("redis://h:6379/2", ("redis://h:6379/2", "coatcheck:throttle")),
        ("rediss://h:6379/2?prefix=app:", ("rediss://h:6379/2", "app:throttle")),
        ("redis+cluster://a:1,b:2/0?prefix=x:", ("redis+cluster://a:1,b:2", "x:throttle")),
        ("REDISS+CLUSTER://a:1,b:2", ("rediss+cluster://a:1,b:2", "coatcheck:throttle")),
        (
            "redis+sentinel://a:1,b:2/main/3",
            ("redis+sentinel://a:1,b:2/main", "coatcheck:throttle"),
        ),
        ("redis+sentinel://a:1/main", ("redis+sentinel://a:1/main", "coatcheck:throttle")),
        ("redis+sentinel://a:1/XmainX/0", ("redis+sentinel://a:1/XmainX", "coatcheck:throttle")),
    ],
)
def test_the_counters_url_for_each_store_url_is_exact(
    store_url: str, expected: tuple[str, str]
) -> None:
    assert ratelimit_url_for(store_url) == expected


def test_an_unusable_counters_url_is_refused_naming_only_its_scheme(tmp_path: Path) -> None:
    settings = Settings.from_config(
        {"COATCHECK_RATELIMIT_URL": "nosuch://user:secret@h/?next=a://b"},
        instance_path=str(tmp_path),
    )
    with pytest.raises(ConfigurationError) as caught:
        LoginThrottle.from_settings(settings)
    assert str(caught.value) == (
        "the login throttle cannot use a nosuch:// store (ConfigurationError); "
        "set COATCHECK_RATELIMIT_URL to a storage URL of the limits library"
    )


def test_the_pair_limit_follows_the_settings(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings.from_config(
        {"COATCHECK_STORE_URL": "memory://", "COATCHECK_THROTTLE_ACCOUNT": "2/15 minutes"},
        instance_path=str(tmp_path),
    )
    throttle = LoginThrottle.from_settings(settings, clock=clock)
    for _ in range(2):
        assert throttle.reserve("alice", "192.0.2.1") is None
        throttle.failed("alice", "192.0.2.1")
    refusal = throttle.reserve("alice", "192.0.2.1")
    assert refusal is not None and refusal.scope == "pair"
    throttle.close()


def test_a_storage_without_a_moving_window_is_refused() -> None:
    with pytest.raises(TypeError) as caught:
        LoginThrottle(object())  # type: ignore[arg-type]
    assert str(caught.value) == "the login throttle needs a storage with a moving window"


def test_open_storage_reads_the_scheme_before_the_first_separator() -> None:
    storage = open_storage("memory://?note=a://b")
    assert isinstance(storage, SQLiteThrottleStorage) and storage.path == ":memory:"
    storage.close()


def test_an_asynchronous_storage_is_refused() -> None:
    with pytest.raises(TypeError) as caught:
        open_storage("async+memory://")
    assert str(caught.value) == "the login throttle needs a synchronous storage"
