"""Password policy (NIST SP 800-63B) and hashing (Argon2id, bcrypt accepted)."""

from __future__ import annotations

from typing import Any

import argon2
import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coatcheck.core.errors import ConfigurationError, PasswordRejected
from coatcheck.core.passwords import (
    PasswordHasher,
    _common_passwords,
    _TruncatingBcryptHasher,
    check_password_policy,
    is_common_password,
)

GOOD = "correct horse battery staple"
OWASP_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
FAST_PREFIX = "$argon2id$v=19$m=1024,t=1,p=1$"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher.fast_for_tests()


def reason_for(password: str, **kwargs: Any) -> str:
    with pytest.raises(PasswordRejected) as info:
        check_password_policy(password, **kwargs)
    assert password not in info.value.message
    assert str(info.value) == info.value.message
    return info.value.reason


# Policy -------------------------------------------------------------------


def test_policy_accepts_a_passphrase() -> None:
    check_password_policy(GOOD, username="alice")


def test_policy_has_no_composition_rules() -> None:
    check_password_policy("all lowercase words here")
    check_password_policy("zqjvkwpmxhtb")


def test_too_short_is_refused_and_the_minimum_is_accepted() -> None:
    assert reason_for("tr0ub4dor&3") == "too_short"  # 11 characters
    check_password_policy("tr0ub4dor&3x")  # 12


def test_length_counts_code_points_not_bytes() -> None:
    # 12 code points, 36 UTF-8 bytes: long enough.
    check_password_policy("日本語のパスワードです。")
    # 11 code points but 44 UTF-8 bytes: too short all the same.
    assert reason_for("🔒" * 11) == "too_short"


def test_too_long_is_refused_and_the_maximum_is_accepted() -> None:
    longest = "".join(chr(0x4E00 + i) for i in range(256))  # 256 distinct characters
    check_password_policy(longest)
    assert reason_for(longest + "q") == "too_long"


def test_length_limits_are_configurable() -> None:
    check_password_policy("short pass", min_length=8)
    assert reason_for("a fine passphrase", max_length=10) == "too_long"
    assert reason_for("twelve chars", min_length=16) == "too_short"


def test_the_too_short_message_names_the_minimum() -> None:
    with pytest.raises(PasswordRejected, match="at least 12 characters"):
        check_password_policy("hunter2")


@pytest.mark.parametrize(
    "password",
    ["password1234", "PASSWORD1234", "123456789012", "qwertyuiop123", "ｐａｓｓｗｏｒｄ１２３４"],
)
def test_common_passwords_are_refused(password: str) -> None:
    assert reason_for(password) == "common"


def test_a_common_password_made_longer_is_not_on_the_list() -> None:
    assert not is_common_password("password1234 but longer")
    check_password_policy("password1234 but longer")


@pytest.mark.parametrize(
    "username",
    ["alice.wonderland", "Alice.Wonderland", "  ALICE.WONDERLAND ", "ａｌｉｃｅ.wonderland"],
)
def test_password_equal_to_username_is_refused(username: str) -> None:
    assert reason_for("alice.wonderland", username=username) == "same_as_username"
    assert reason_for(" Alice.Wonderland ", username=username) == "same_as_username"


def test_password_containing_the_username_is_allowed() -> None:
    check_password_policy("alice.wonderland rabbit hole", username="alice.wonderland")


def test_blank_username_does_not_match_a_blank_password() -> None:
    check_password_policy("a name of blanks", username="   ")
    check_password_policy("a name of blanks", username="")
    assert reason_for(" " * 12, username="   ") == "common"


@pytest.mark.parametrize("blank", ["", " " * 12, "\t\n" * 6, "\u3000" * 12])
def test_blank_passwords_count_as_common(blank: str) -> None:
    assert is_common_password(blank)
    assert not is_common_password(" padded words ")


def test_length_is_checked_before_the_list() -> None:
    assert is_common_password("letmein")
    assert reason_for("letmein") == "too_short"


# The bundled list ---------------------------------------------------------


def test_the_list_holds_at_least_ten_thousand_passwords() -> None:
    words = _common_passwords()
    assert len(words) >= 10_000
    assert all(word == word.strip().lower() and not word.startswith("#") for word in words)


@pytest.mark.parametrize("word", ["password", "123456789012", "qwertyuiop", "iloveyou"])
def test_famous_passwords_are_on_the_list(word: str) -> None:
    assert is_common_password(word)
    assert is_common_password(word.upper())


def test_uncommon_and_header_lines_are_not_on_the_list() -> None:
    assert not is_common_password(GOOD)
    assert not is_common_password("# Common passwords, one a line, lowercase, most common first.")


def test_the_list_is_loaded_once() -> None:
    assert _common_passwords() is _common_passwords()


# Hashing ------------------------------------------------------------------


def test_round_trip(hasher: PasswordHasher) -> None:
    stored = hasher.hash(GOOD)
    assert stored.startswith(FAST_PREFIX)
    assert GOOD not in stored
    assert hasher.verify(GOOD, stored) == (True, None)
    assert hasher.verify(GOOD + "!", stored) == (False, None)
    assert hasher.verify(GOOD.upper(), stored) == (False, None)


def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert hasher.hash(GOOD) != hasher.hash(GOOD)


def test_default_parameters_are_owasps() -> None:
    # The one test that pays for the real parameters.
    default = PasswordHasher()
    stored = default.hash(GOOD)
    assert stored.startswith(OWASP_PREFIX)
    assert default.verify(GOOD, stored) == (True, None)


def test_invalid_parameters_are_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError):
        PasswordHasher(time_cost=0)
    with pytest.raises(ConfigurationError):
        PasswordHasher(memory_cost=4, parallelism=1)
    PasswordHasher(memory_cost=8, time_cost=1, parallelism=1)


def test_bcrypt_hash_verifies_and_is_replaced_by_argon2(hasher: PasswordHasher) -> None:
    stored = bcrypt.hashpw(GOOD.encode(), bcrypt.gensalt(rounds=4)).decode()
    valid, new_hash = hasher.verify(GOOD, stored)
    assert valid
    assert new_hash is not None and new_hash.startswith(FAST_PREFIX)
    assert hasher.verify(GOOD, new_hash) == (True, None)
    assert hasher.verify("wrong password", stored) == (False, None)


@pytest.mark.parametrize("prefix", [b"2a", b"2b", b"2y"])
def test_bcrypt_variants_verify(hasher: PasswordHasher, prefix: bytes) -> None:
    stored = bcrypt.hashpw(GOOD.encode(), bcrypt.gensalt(rounds=4, prefix=b"2b")).decode()
    stored = "$" + prefix.decode() + stored[3:]
    assert hasher.verify(GOOD, stored)[0]


def test_bcrypt_reads_only_the_first_72_bytes(hasher: PasswordHasher) -> None:
    # What a truncating bcrypt (PHP, Node, bcrypt<5) stored for a long password.
    long_password = "é" * 40 + "tail"  # 84 bytes; the first 72 are 36 "é"
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    valid, new_hash = hasher.verify(long_password, stored)
    assert valid
    # The new hash is of the whole password, not of its first 72 bytes.
    assert new_hash is not None
    assert hasher.verify(long_password, new_hash) == (True, None)
    assert hasher.verify("é" * 36, new_hash) == (False, None)
    assert hasher.verify("é" * 36, stored)[0]
    # The first 72 bytes are compared: a different start does not match.
    assert hasher.verify("e" + long_password[1:], stored) == (False, None)


def test_bcrypt_truncation_may_split_a_character(hasher: PasswordHasher) -> None:
    long_password = "a" + "é" * 40  # byte 72 is the first half of an "é"
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert hasher.verify(long_password, stored)[0]
    assert hasher.verify("a" + "é" * 35, stored) == (False, None)


def test_over_long_passwords_against_bcrypt_never_raise(hasher: PasswordHasher) -> None:
    stored = bcrypt.hashpw(b"x" * 20, bcrypt.gensalt(rounds=4)).decode()
    assert hasher.verify("x" * 10_000, stored) == (False, None)
    assert hasher.verify("\u00e9" * 73, stored) == (False, None)


def test_argon2_with_other_parameters_is_replaced(hasher: PasswordHasher) -> None:
    old = PasswordHasher(memory_cost=512, time_cost=1, parallelism=1)
    stored = old.hash(GOOD)
    valid, new_hash = hasher.verify(GOOD, stored)
    assert valid
    assert new_hash is not None and new_hash.startswith(FAST_PREFIX)
    assert hasher.verify("wrong password", stored) == (False, None)


def test_argon2i_is_replaced_by_argon2id(hasher: PasswordHasher) -> None:
    legacy = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.I)
    valid, new_hash = hasher.verify(GOOD, legacy.hash(GOOD))
    assert valid
    assert new_hash is not None and new_hash.startswith(FAST_PREFIX)


GARBAGE_HASHES = [
    "",
    "not a hash",
    "!",
    "$argon2id$",
    "$argon2id$v=19$m=1024,t=1,p=1",
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$",
    "$argon2id$v=19$m=1024,t=1,p=1$!!!!$!!!!",
    "$argon2id$v=19$m=1024,t=1,p=1$YWFhYWFhYWFhYWFhYWFhYQ$" + "A" * 43,
    "$2b$04$" + "." * 53,
    "$2x$04$" + "a" * 53,
    "$2b$99$" + "a" * 53,
    "$2b$04$short",
    "$1$md5crypt$abcdefghijklmnopqrstuv",
    "pbkdf2_sha256$600000$salt$hash",
    "\x00\ud800",
]


@pytest.mark.parametrize("stored", GARBAGE_HASHES)
def test_malformed_hashes_do_not_match_and_do_not_raise(
    hasher: PasswordHasher, stored: str
) -> None:
    assert hasher.verify(GOOD, stored) == (False, None)


@pytest.mark.parametrize("password", ["", "\x00", "\ud800 lone surrogate", "x" * 100_000])
def test_odd_passwords_do_not_raise(hasher: PasswordHasher, password: str) -> None:
    stored = hasher.hash(GOOD)
    assert hasher.verify(password, stored) == (False, None)
    hasher.dummy_verify(password)


def test_non_string_input_does_not_match(hasher: PasswordHasher) -> None:
    stored = hasher.hash(GOOD)
    assert hasher.verify(None, stored) == (False, None)  # type: ignore[arg-type]
    assert hasher.verify(GOOD, None) == (False, None)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(password=st.text(max_size=100), stored=st.text(max_size=120))
def test_verify_never_raises(password: str, stored: str) -> None:
    assert PasswordHasher.fast_for_tests().verify(password, stored) == (False, None)


@settings(max_examples=15, deadline=None)
@given(password=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80))
def test_any_encodable_password_round_trips(password: str) -> None:
    fast = PasswordHasher.fast_for_tests()
    assert fast.verify(password, fast.hash(password)) == (True, None)


def test_dummy_verify_runs_against_a_hash_of_the_current_parameters(
    hasher: PasswordHasher,
) -> None:
    assert hasher.dummy_verify(GOOD) is None
    dummy = hasher._dummy_hash
    assert dummy is not None and dummy.startswith(FAST_PREFIX)
    hasher.dummy_verify("another")
    assert hasher._dummy_hash is dummy  # made once, then reused


def test_unknown_hash_costs_a_dummy_verification(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(hasher, "dummy_verify", calls.append)
    assert hasher.verify(GOOD, "") == (False, None)
    assert calls == [GOOD]


def test_the_bcrypt_verifier_takes_bytes_too() -> None:
    stored = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4))
    assert _TruncatingBcryptHasher().verify(b"x" * 80, stored) is True
    assert _TruncatingBcryptHasher().verify("x" * 80, stored) is True
    assert _TruncatingBcryptHasher().verify(b"y" * 80, stored) is False


@pytest.mark.parametrize(
    "password", ["admin admin admin", "ADMIN-admin-Admin", "admin2024admin", "  Admin 12345678"]
)
def test_passwords_built_from_the_username_are_refused(password: str) -> None:
    assert reason_for(password, username="admin") == "same_as_username"


@pytest.mark.parametrize(
    "password", ["a" * 16, "abcabcabcabc", "ab ab ab ab ab ab", "1212121212121212", "aaaabbbbcccc"]
)
def test_repetitive_passwords_are_refused_as_such(password: str) -> None:
    assert reason_for(password) == "repetitive"
    with pytest.raises(PasswordRejected, match="too repetitive"):
        check_password_policy(password)


@pytest.mark.parametrize("password", ["correct horse battery", "abcd abcd xyz!", GOOD])
def test_varied_passwords_are_not_repetitive(password: str) -> None:
    check_password_policy(password)
