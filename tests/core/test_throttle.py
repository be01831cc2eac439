"""The login throttle's rules, with no Flask, on every place its counters can live."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coatcheck.auth.throttle import LoginThrottle, Refusal, open_storage, ratelimit_url_for
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError, StoreUnavailable
from coatcheck.core.settings import Settings

WINDOW = 15 * 60


def attempt(throttle: LoginThrottle, username: str, address: str, *, right: bool) -> Refusal | None:
    """Run one login attempt through the throttle as the auth layer does."""
    refusal = throttle.reserve(username, address)
    if refusal is None:
        if right:
            throttle.succeeded(username, address)
        else:
            throttle.failed(username, address)
    return refusal


def fail(throttle: LoginThrottle, username: str, address: str, times: int) -> None:
    for _ in range(times):
        assert attempt(throttle, username, address, right=False) is None


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_throttle(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[Callable[..., LoginThrottle]]:
    """Return a factory of throttles on the parametrised storage, from settings."""
    store_url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'sessions.db'}",
    }.get(kind) or request.getfixturevalue("redis_url")
    opened: list[LoginThrottle] = []

    def factory(**rates: str) -> LoginThrottle:
        settings = Settings(store_url=store_url, **rates)
        throttle = LoginThrottle.from_settings(settings, clock=clock)
        opened.append(throttle)
        return throttle

    yield factory
    for throttle in opened:
        throttle.close()


@pytest.fixture
def throttle(make_throttle: Callable[..., LoginThrottle]) -> LoginThrottle:
    return make_throttle()


def test_a_strangers_failures_do_not_lock_the_owner_out(throttle: LoginThrottle) -> None:
    fail(throttle, "alice", "203.0.113.9", 5)
    refused = attempt(throttle, "alice", "203.0.113.9", right=True)
    assert refused is not None and refused.scope == "pair"
    assert 0 < refused.wait <= WINDOW
    # The owner, elsewhere, is not locked out; nor is another account from there.
    assert attempt(throttle, "alice", "198.51.100.7", right=True) is None
    assert attempt(throttle, "bobby", "203.0.113.9", right=True) is None


def test_usernames_are_case_folded(throttle: LoginThrottle) -> None:
    fail(throttle, "Alice", "203.0.113.9", 3)
    fail(throttle, " ALICE ", "203.0.113.9", 2)
    assert throttle.reserve("alice", "203.0.113.9") is not None


def test_a_success_gives_the_pairs_slots_back(throttle: LoginThrottle) -> None:
    fail(throttle, "alice", "203.0.113.9", 4)
    assert attempt(throttle, "alice", "203.0.113.9", right=True) is None
    fail(throttle, "alice", "203.0.113.9", 5)
    refused = throttle.reserve("alice", "203.0.113.9")
    assert refused is not None and refused.first
    # After a success there, a new lock of the pair is audited anew.
    throttle.succeeded("alice", "203.0.113.9")
    fail(throttle, "alice", "203.0.113.9", 5)
    again = throttle.reserve("alice", "203.0.113.9")
    assert again is not None and again.first


def test_a_refused_attempt_takes_no_slot(make_throttle: Callable[..., LoginThrottle]) -> None:
    throttle = make_throttle(throttle_account_ceiling="6/15 minutes")
    fail(throttle, "alice", "203.0.113.9", 5)
    for _ in range(20):
        assert throttle.reserve("alice", "203.0.113.9") is not None
    # The refusals counted no failure against the account's ceiling.
    fail(throttle, "alice", "198.51.100.7", 1)
    refused = throttle.reserve("alice", "198.51.100.7")
    assert refused is not None and refused.scope == "account"


def test_ipv6_addresses_are_keyed_by_their_64_network(throttle: LoginThrottle) -> None:
    fail(throttle, "alice", "2001:db8:1:2::1", 3)
    fail(throttle, "alice", "2001:db8:1:2:ffff::9", 2)
    assert throttle.reserve("alice", "2001:db8:1:2::77") is not None
    assert throttle.reserve("alice", "2001:db8:1:3::1") is None
    fail(throttle, "bobby", "::ffff:192.0.2.1", 5)
    assert throttle.reserve("bobby", "192.0.2.1") is not None


def test_the_ceiling_stops_a_campaign_spread_over_addresses(
    make_throttle: Callable[..., LoginThrottle],
) -> None:
    throttle = make_throttle(throttle_account_ceiling="12/15 minutes")
    for i in range(2):
        fail(throttle, "alice", f"203.0.113.{i}", 5)
    fail(throttle, "alice", "203.0.113.2", 1)
    # The owner's success does not launder the guesses made elsewhere.
    assert attempt(throttle, "alice", "198.51.100.7", right=True) is None
    fail(throttle, "alice", "203.0.113.3", 1)
    refused = throttle.reserve("alice", "203.0.113.4")
    assert refused is not None and refused.scope == "account"
    # Past the ceiling the owner waits too: the account is under attack.
    owner = throttle.reserve("alice", "198.51.100.7")
    assert owner is not None and (owner.scope, owner.first) == ("account", False)
    assert throttle.reserve("bobby", "203.0.113.4") is None


def test_the_address_budget_counts_failures_whatever_the_account(
    make_throttle: Callable[..., LoginThrottle],
) -> None:
    throttle = make_throttle(throttle_address="8/15 minutes")
    # Successes never count: an office behind one address logs in all day.
    for i in range(20):
        assert attempt(throttle, f"colleague{i}", "203.0.113.9", right=True) is None
    for i in range(8):
        fail(throttle, f"nobody{i}", "203.0.113.9", 1)
    refused = throttle.reserve("alice", "203.0.113.9")
    assert refused is not None and refused.scope == "address"
    assert throttle.reserve("alice", "198.51.100.7") is None


def test_registrations_are_counted_per_address(throttle: LoginThrottle) -> None:
    for _ in range(10):
        assert throttle.reserve_registration("203.0.113.9") is None
    refused = throttle.reserve_registration("203.0.113.9")
    assert refused is not None and refused.scope == "register"
    assert 0 < refused.wait <= 3600
    assert throttle.reserve_registration("198.51.100.7") is None
    # Registrations and logins keep separate books.
    assert throttle.reserve("alice", "203.0.113.9") is None


def test_first_is_true_once_per_refused_key(throttle: LoginThrottle) -> None:
    fail(throttle, "alice", "203.0.113.9", 5)
    firsts = [throttle.reserve("alice", "203.0.113.9") for _ in range(4)]
    assert [r.first if r else None for r in firsts] == [True, False, False, False]
    # Another key's first refusal is its own.
    fail(throttle, "alice", "203.0.113.10", 5)
    other = throttle.reserve("alice", "203.0.113.10")
    assert other is not None and other.first
    for _ in range(10):
        throttle.reserve_registration("203.0.113.9")
    registrations = [throttle.reserve_registration("203.0.113.9") for _ in range(2)]
    assert [r.first if r else None for r in registrations] == [True, False]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_first_is_shared_by_every_throttle_on_the_same_counters(
    make_throttle: Callable[..., LoginThrottle],
) -> None:
    one, two = make_throttle(), make_throttle()
    fail(one, "alice", "203.0.113.9", 5)
    first = two.reserve("alice", "203.0.113.9")
    again = one.reserve("alice", "203.0.113.9")
    assert first is not None and first.first
    assert again is not None and not again.first


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_injected_clock_moves_the_windows(throttle: LoginThrottle, clock: ManualClock) -> None:
    fail(throttle, "alice", "203.0.113.9", 3)
    clock.advance(600)
    fail(throttle, "alice", "203.0.113.9", 2)
    refused = throttle.reserve("alice", "203.0.113.9")
    assert refused == Refusal(wait=WINDOW - 600, scope="pair", first=True)
    clock.advance(WINDOW - 600 + 1)  # the first three leave the window
    assert throttle.reserve("alice", "203.0.113.9") is None
    throttle.failed("alice", "203.0.113.9")
    for _ in range(2):
        assert throttle.reserve("alice", "203.0.113.9") is None
        throttle.failed("alice", "203.0.113.9")
    again = throttle.reserve("alice", "203.0.113.9")
    assert again == Refusal(wait=600 - 1, scope="pair", first=False)
    # A window's length after the first refusal, a refusal is audited again.
    clock.advance(WINDOW + 1)
    fail(throttle, "alice", "203.0.113.9", 5)
    assert throttle.reserve("alice", "203.0.113.9") == Refusal(WINDOW, "pair", True)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_registration_windows_follow_the_clock(throttle: LoginThrottle, clock: ManualClock) -> None:
    for _ in range(10):
        assert throttle.reserve_registration("203.0.113.9") is None
    assert throttle.reserve_registration("203.0.113.9") == Refusal(3600, "register", True)
    clock.advance(3601)
    assert throttle.reserve_registration("203.0.113.9") is None


def test_the_counters_follow_the_session_store(tmp_path: Path) -> None:
    assert ratelimit_url_for(f"sqlite:///{tmp_path}/sessions.db") == (
        f"coatcheck+sqlite:///{tmp_path}/throttle.db",
        "coatcheck-throttle",
    )
    assert ratelimit_url_for("sqlite:///instance/sessions.db")[0] == (
        "coatcheck+sqlite:///instance/throttle.db"
    )
    assert ratelimit_url_for("memory://")[0] == "memory://"
    assert ratelimit_url_for("redis://h:6379/3?prefix=app:") == (
        "redis://h:6379/3",
        "app:throttle",
    )


def test_the_sqlite_counters_live_beside_the_store(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'sessions.db'}")
    throttle = LoginThrottle.from_settings(settings, clock=clock)
    fail(throttle, "alice", "203.0.113.9", 1)
    throttle.close()
    assert (tmp_path / "throttle.db").exists()
    assert (tmp_path / "throttle.db").stat().st_mode & 0o077 == 0


def test_an_unusable_storage_url_is_a_configuration_error_that_hides_it() -> None:
    for url in ("nosuch://user:hunter2secret@host/0", "coatcheck+sqlite://hunter2secret"):
        with pytest.raises(ConfigurationError, match="COATCHECK_RATELIMIT_URL") as caught:
            LoginThrottle.from_settings(Settings(ratelimit_url=url))
        assert "hunter2secret" not in str(caught.value)


def test_unreachable_counters_fail_closed(tmp_path: Path) -> None:
    unreachable = LoginThrottle(open_storage("redis://127.0.0.1:1/0"))
    with pytest.raises(StoreUnavailable):
        unreachable.reserve("alice", "203.0.113.9")
    (tmp_path / "throttle.db").mkdir()  # a folder where the file should be
    unusable = LoginThrottle(open_storage(f"coatcheck+sqlite:///{tmp_path}/throttle.db"))
    for call in (
        lambda: unusable.reserve("alice", "203.0.113.9"),
        lambda: unusable.failed("alice", "203.0.113.9"),
        lambda: unusable.reserve_registration("203.0.113.9"),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert str(tmp_path) not in str(caught.value)
    unreachable.close()
    unusable.close()
