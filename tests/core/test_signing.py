"""Signed cookies: the injected clock, key checks, and only the exact signed text verifies."""

from __future__ import annotations

import json
import string
import time

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.signing import MIN_SECRET_KEY_LENGTH, CookieSigner, signing_keys

KEYS = signing_keys("signing-test-secret-key-0123456789")
T = 1_700_000_000
#: "hello" signed for the csrf purpose with KEYS at T.
SIGNED = CookieSigner(KEYS, "csrf", clock=lambda: T).sign("hello")
B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def timestamp_of(signed: str) -> int:
    return int.from_bytes(base64_decode(signed.split(".")[-2]), "big")


# -- the clock ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_age", [1, 60, 3600])
def test_a_cookie_lives_exactly_max_age_seconds_on_the_clock(max_age: int) -> None:
    clock = ManualClock(T)
    signer = CookieSigner(KEYS, "csrf", clock=clock)
    signed = signer.sign("hello")
    assert timestamp_of(signed) == T
    clock.advance(max_age - 1)
    assert signer.verify(signed, max_age=max_age) == "hello"
    clock.advance(1)
    assert signer.verify(signed, max_age=max_age) == "hello"  # age == max_age still holds
    clock.advance(1)
    assert signer.verify(signed, max_age=max_age) is None


def test_sign_and_verify_both_read_the_clock() -> None:
    signed_at_t = CookieSigner(KEYS, "csrf", clock=lambda: T).sign("hello")
    later = CookieSigner(KEYS, "csrf", clock=lambda: T + 1000)
    assert later.sign("hello") != signed_at_t
    assert timestamp_of(later.sign("hello")) == T + 1000
    assert later.verify(signed_at_t, max_age=999) is None
    assert later.verify(signed_at_t, max_age=1000) == "hello"


def test_a_cookie_from_the_future_is_refused() -> None:
    signed = CookieSigner(KEYS, "csrf", clock=lambda: T + 1).sign("hello")
    assert CookieSigner(KEYS, "csrf", clock=lambda: T).verify(signed, max_age=60) is None


def test_fractions_of_a_second_are_cut() -> None:
    assert timestamp_of(CookieSigner(KEYS, "csrf", clock=lambda: T + 0.999).sign("x")) == T


def test_the_default_clock_is_the_system_clock() -> None:
    before = int(time.time())
    signed = CookieSigner(KEYS, "csrf").sign("hello")
    assert before <= timestamp_of(signed) <= int(time.time())
    assert CookieSigner(KEYS, "csrf").verify(signed, max_age=60) == "hello"


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", b""])
def test_a_secret_key_is_required(key: str | bytes | None) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY is required"):
        signing_keys(key)


def test_a_secret_key_has_a_minimum_length() -> None:
    assert MIN_SECRET_KEY_LENGTH == 16
    with pytest.raises(ConfigurationError, match="at least 16 random characters"):
        signing_keys("k" * 15)
    assert signing_keys("k" * 16) == [b"k" * 16]
    assert signing_keys("é" * 16) == ["é".encode() * 16]


# -- only the exact text sign() makes ----------------------------------------------------


def variants(signed: str) -> list[str]:
    """Every one-character replacement, deletion and insertion, plus appended junk."""
    alphabet = B64URL + "=. %\x00é"
    out = set()
    for i in range(len(signed) + 1):
        if i < len(signed):
            out.add(signed[:i] + signed[i + 1 :])
            out.update(signed[:i] + c + signed[i + 1 :] for c in alphabet)
        out.update(signed[:i] + c + signed[i:] for c in alphabet)
    out.discard(signed)
    return sorted(out)


def test_every_single_character_change_is_refused() -> None:
    """Deterministic: each position, not a random one, so the last character is always hit."""
    signer = CookieSigner(KEYS, "csrf", clock=lambda: T)
    assert signer.verify(SIGNED, max_age=60) == "hello"
    accepted = [v for v in variants(SIGNED) if signer.verify(v, max_age=60) is not None]
    assert accepted == []


def spare_bit_variants(signed: str) -> list[str]:
    """Return ``signed`` with other values of the spare low bits of its last character.

    A 20-byte HMAC-SHA1 is 27 base64 characters, whose last one carries two bits
    that decoding ignores: the lenient decoder reads all four forms as one signature.
    """
    index = B64URL.index(signed[-1])
    assert index & 0b11 == 0
    return [signed[:-1] + B64URL[index | low] for low in (1, 2, 3)]


def test_other_spare_bits_in_the_signature_are_refused() -> None:
    signer = CookieSigner(KEYS, "csrf", clock=lambda: T)
    plain = URLSafeTimedSerializer(KEYS, salt="coatcheck.csrf")
    for variant in spare_bit_variants(SIGNED):
        assert plain.loads(variant) == "hello"  # itsdangerous alone takes it...
        assert signer.verify(variant, max_age=60) is None  # ...coatcheck does not


@pytest.mark.parametrize("suffix", ["=", "==", "\n", " "])
def test_padding_and_trailing_text_are_refused(suffix: str) -> None:
    signer = CookieSigner(KEYS, "csrf", clock=lambda: T)
    assert signer.verify(SIGNED + suffix, max_age=60) is None
    assert signer.verify(suffix + SIGNED, max_age=60) is None


def test_a_compressed_payload_round_trips() -> None:
    signer = CookieSigner(KEYS, "remember", clock=lambda: T)
    value = "series." + "a" * 200
    signed = signer.sign(value)
    assert signed.startswith(".")  # itsdangerous marks a compressed payload with a dot
    assert signer.verify(signed, max_age=60) == value
    assert signer.verify("." + signed, max_age=60) is None


@pytest.mark.parametrize("value", [123, None, ["a"], {"a": "b"}, True])
def test_a_signed_value_that_is_not_text_is_refused(value: object) -> None:
    clock = ManualClock(T)
    serializer = URLSafeTimedSerializer(KEYS, salt="coatcheck.csrf", serializer=json)
    signed = str(serializer.dumps(value))
    # Signed with the right key by the plain serializer (system time): checked by wall time.
    assert CookieSigner(KEYS, "csrf").verify(signed, max_age=60) is None
    assert CookieSigner(KEYS, "csrf", clock=clock).verify("x" + signed, max_age=60) is None


def test_a_payload_that_is_not_json_signed_with_the_key_is_refused() -> None:
    serializer = URLSafeTimedSerializer(KEYS, salt="coatcheck.csrf")
    signer = serializer.make_signer(serializer.salt)
    signed = signer.sign(b"bm90IGpzb24").decode()  # base64url of "not json"
    assert CookieSigner(KEYS, "csrf").verify(signed, max_age=60) is None


@pytest.mark.parametrize(
    "text", ["", ".", "..", "a.b", "a.b.c.d", "a..b", ".a.b", "ImhlbGxvIg.ZVPxAA.", "é.é.é"]
)
def test_malformed_text_is_refused(text: str) -> None:
    assert CookieSigner(KEYS, "csrf", clock=lambda: T).verify(text, max_age=60) is None
