"""Session IDs, keys and handles; lifetime arithmetic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coatcheck.core.ids import (
    is_handle,
    is_session_id,
    new_handle,
    new_session_id,
    store_key,
)
from coatcheck.core.records import LifetimePolicy


def test_ids_are_256_bit_url_safe_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_session_id(i) and len(i) == 43 for i in ids)


def test_store_key_is_a_sha256_not_the_id() -> None:
    sid = new_session_id()
    key = store_key(sid)
    assert len(key) == 64 and sid not in key
    assert store_key(sid) == key


def test_handles_are_random_hex() -> None:
    handle = new_handle()
    assert is_handle(handle) and len(handle) == 32
    assert new_handle() != handle


@given(st.text(max_size=100))
def test_only_exact_shapes_are_ids(text: str) -> None:
    if is_session_id(text):
        assert len(text) == 43
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_expiry_is_the_earlier_of_idle_and_absolute() -> None:
    policy = LifetimePolicy(idle_timeout=100, absolute_timeout=1000, touch_interval=10)
    record = policy.new_record("k", 0.0)
    assert record.expires_at == 100
    policy.seen(record, 950)
    assert record.expires_at == 1000
    assert not policy.is_expired(record, 999.9)
    assert policy.is_expired(record, 1000)
    assert not policy.needs_touch(record, 959.9)
    assert policy.needs_touch(record, 960)
