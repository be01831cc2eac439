"""Login throttling on the limits library, in this process's memory."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import StoreUnavailable
from coatcheck.core.throttle import LoginThrottle, _account_id, _unavailable, ratelimit_url_for


@pytest.mark.parametrize(
    ("store_url", "expected"),
    [
        ("memory://", ("memory://", "coatcheck-throttle")),
        ("sqlite:///tmp/sessions.db", ("memory://", "coatcheck-throttle")),
        ("redis://h:6379/2", ("redis://h:6379/2", "coatcheck:throttle")),
        ("REDIS://h:6379/2", ("redis://h:6379/2", "coatcheck:throttle")),
        ("rediss://u:p@h:6380/0?prefix=app:", ("rediss://u:p@h:6380/0", "app:throttle")),
        ("redis://h?prefix=x%3A&other=1", ("redis://h", "x:throttle")),
        ("redis+cluster://a:1,b:2/5?prefix=c:", ("redis+cluster://a:1,b:2", "c:throttle")),
        ("rediss+cluster://a:1,b:2", ("rediss+cluster://a:1,b:2", "coatcheck:throttle")),
        (
            "redis+sentinel://a:1,b:2/mymaster/3",
            ("redis+sentinel://a:1,b:2/mymaster", "coatcheck:throttle"),
        ),
        (
            "redis+sentinel://a:1/mymaster?prefix=s:",
            ("redis+sentinel://a:1/mymaster", "s:throttle"),
        ),
        (
            "redis+sentinel://a:1/XmasterX/3",
            ("redis+sentinel://a:1/XmasterX", "coatcheck:throttle"),
        ),
    ],
)
def test_ratelimit_url_for(store_url: str, expected: tuple[str, str]) -> None:
    assert ratelimit_url_for(store_url) == expected


def test_an_account_id_is_a_bounded_hash_of_the_folded_name() -> None:
    expected = hashlib.sha256(b"alice").hexdigest()[:32]
    assert _account_id("alice") == expected
    assert _account_id("  ALICE\t") == expected
    assert _account_id("Alice") == expected
    assert _account_id("STRASSE") == _account_id("straße")  # casefold, not lower
    assert len(_account_id("x" * 10_000)) == 32
    assert _account_id("\ud800") == hashlib.sha256(b"\xed\xa0\x80").hexdigest()[:32]


@pytest.fixture
def throttle() -> Iterator[LoginThrottle]:
    throttle = LoginThrottle("memory://", "3/minute", "5/minute")
    yield throttle
    throttle.storage.reset()


def test_an_account_is_held_after_its_limit(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert throttle.reserve("alice", "10.0.0.1") is None
    wait = throttle.reserve("alice", "10.0.0.2")
    assert wait is not None and 1 <= wait <= 60
    assert throttle.reserve("bob", "10.0.0.1") is None  # other accounts go on
    assert throttle.reserve("ALICE ", "10.0.0.3") is not None  # the same account


def test_a_success_gives_the_account_its_slots_back(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert throttle.reserve("alice", "10.0.0.1") is None
    throttle.succeeded(" Alice")
    for _ in range(3):
        assert throttle.reserve("alice", "10.0.0.1") is None
    assert throttle.reserve("alice", "10.0.0.1") is not None


def test_an_address_is_held_after_its_failures(throttle: LoginThrottle) -> None:
    for i in range(5):
        assert throttle.reserve(f"user{i}", "10.0.0.1") is None
        throttle.failed(f"user{i}", "10.0.0.1")
    wait = throttle.reserve("someone-else", "10.0.0.1")
    assert wait is not None and 1 <= wait <= 60
    assert throttle.reserve("someone-else", "10.0.0.2") is None


def test_successes_never_hold_an_address(throttle: LoginThrottle) -> None:
    for i in range(20):
        assert throttle.reserve(f"user{i}", "10.0.0.1") is None
        throttle.succeeded(f"user{i}")


def test_no_address_counts_as_one_unknown_address(throttle: LoginThrottle) -> None:
    for i in range(5):
        throttle.failed(f"user{i}", "")
    assert throttle.reserve("someone", "") is not None
    assert throttle.reserve("someone", "unknown") is not None
    assert throttle.reserve("someone", "10.0.0.1") is None


def test_the_rates_are_parsed_at_start() -> None:
    throttle = LoginThrottle("memory://", "2/second", "7/hour", key_prefix="p")
    assert (throttle.account_rate.amount, throttle.account_rate.get_expiry()) == (2, 1)
    assert (throttle.address_rate.amount, throttle.address_rate.get_expiry()) == (7, 3600)
    with pytest.raises(ValueError):
        LoginThrottle("memory://", "often", "7/hour")


@pytest.mark.parametrize("error", [ConnectionError("down"), OSError("down"), TimeoutError()])
def test_connection_errors_mean_unavailable(error: Exception) -> None:
    expected = pytest.raises(StoreUnavailable, match="the throttle counters are unavailable")
    with expected, _unavailable():
        raise error


def test_redis_errors_mean_unavailable() -> None:
    redis_error = type("ResponseError", (Exception,), {"__module__": "redis.exceptions"})
    with pytest.raises(StoreUnavailable, match="unavailable: ResponseError"), _unavailable():
        raise redis_error("no")


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), _unavailable():
        raise KeyError("bug")
    other = type("RedisLike", (Exception,), {"__module__": "myredis"})
    with pytest.raises(other), _unavailable():
        raise other()


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Stop time.time() itself: the limits library and the throttle both read it."""
    clock = ManualClock(1_700_000_000)
    monkeypatch.setattr(time, "time", clock)
    return clock


def test_the_wait_is_until_the_account_window_frees_a_slot(
    throttle: LoginThrottle, frozen_time: ManualClock
) -> None:
    for _ in range(3):
        assert throttle.reserve("alice", "10.0.0.1") is None
    frozen_time.advance(10)
    assert throttle.reserve("alice", "10.0.0.1") == 50
    frozen_time.advance(49.5)
    assert throttle.reserve("alice", "10.0.0.1") == 1  # rounded up, never 0
    frozen_time.advance(1)
    assert throttle.reserve("alice", "10.0.0.1") is None


def test_the_wait_is_until_the_address_window_frees_a_slot(
    throttle: LoginThrottle, frozen_time: ManualClock
) -> None:
    for i in range(5):
        throttle.failed(f"user{i}", "10.0.0.1")
        frozen_time.advance(1)
    assert throttle.reserve("bob", "10.0.0.1") == 55
    frozen_time.advance(54.9)
    assert throttle.reserve("bob", "10.0.0.1") == 1
    frozen_time.advance(1)
    assert throttle.reserve("bob", "10.0.0.1") is None


def test_counters_are_kept_under_the_given_prefix() -> None:
    # Redis storage connects lazily: nothing is sent to this port.
    default = LoginThrottle("redis://127.0.0.1:1/0", "3/minute", "5/minute")
    assert default.storage.key_prefix == "coatcheck-throttle"  # type: ignore[attr-defined]
    mine = LoginThrottle("redis://127.0.0.1:1/0", "3/minute", "5/minute", key_prefix="app:t")
    assert mine.storage.key_prefix == "app:t"  # type: ignore[attr-defined]
