"""What core says when it refuses: the exact words, since people and clients read them."""

from __future__ import annotations

import re

import pytest

from coatcheck.core.errors import (
    ConfigurationError,
    CSRFError,
    PasswordRejected,
    Throttled,
)
from coatcheck.core.passwords import PasswordHasher, check_password_policy
from coatcheck.core.signing import signing_keys
from coatcheck.core.tokens import TokenSigner


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("password", "username", "reason", "message"),
    [
        (
            "a long enough pass\ud800",
            None,
            "not_text",
            "The password contains characters that are not valid text.",
        ),
        ("short", None, "too_short", "Use a password of at least 12 characters."),
        ("x" * 257, None, "too_long", "Use a password of at most 256 characters."),
        (
            " Alice-the-admin ",
            "alice-the-ADMIN",
            "same_as_username",
            "Do not use your username as your password.",
        ),
        (
            "password1234",
            None,
            "common",
            "This password is one of the most commonly used and easily guessed. "
            "Choose another; a few unrelated words make a good one.",
        ),
    ],
)
def test_password_policy_refusals(
    password: str, username: str | None, reason: str, message: str
) -> None:
    with pytest.raises(PasswordRejected) as info:
        check_password_policy(password, username=username)
    assert (info.value.reason, info.value.message, str(info.value)) == (reason, message, message)


def test_password_policy_limits_are_named() -> None:
    with pytest.raises(PasswordRejected, match=exactly("Use a password of at least 3 characters.")):
        check_password_policy("ab", min_length=3)
    with pytest.raises(PasswordRejected, match=exactly("Use a password of at most 4 characters.")):
        check_password_policy("abcde", min_length=1, max_length=4)


ARGON2_MESSAGE = (
    "Argon2 needs time_cost >= 1, parallelism >= 1 and memory_cost >= 8 * parallelism (KiB)."
)


@pytest.mark.parametrize(
    "params",
    [
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_cost": 7, "parallelism": 1},
        {"memory_cost": 15, "parallelism": 2},
    ],
)
def test_argon2_parameters_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError, match=exactly(ARGON2_MESSAGE)):
        PasswordHasher(**params)


def test_argon2_parameters_are_kept() -> None:
    hasher = PasswordHasher(memory_cost=16, time_cost=1, parallelism=2)
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (16, 1, 2)
    assert hasher.hash("x").startswith("$argon2id$v=19$m=16,t=1,p=2$")
    default = PasswordHasher()
    assert (default.memory_cost, default.time_cost, default.parallelism) == (19456, 2, 1)
    fast = PasswordHasher.fast_for_tests()
    assert (fast.memory_cost, fast.time_cost, fast.parallelism) == (1024, 1, 1)


def test_signing_key_messages() -> None:
    with pytest.raises(
        ConfigurationError,
        match=exactly(
            "SECRET_KEY is required: coatcheck signs its CSRF and remember-me cookies with it"
        ),
    ):
        signing_keys(None)
    with pytest.raises(
        ConfigurationError,
        match=exactly(
            "SECRET_KEY is too short: use at least 16 random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        ),
    ):
        signing_keys("short")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"algorithm": "HS512", "secret_keys": [b"k"]},
            "COATCHECK_JWT_ALGORITHM must be one of HS256, EdDSA, RS256, not 'HS512'",
        ),
        ({"algorithm": "HS256"}, "HS256 tokens need SECRET_KEY"),
        ({"algorithm": "EdDSA"}, "EdDSA tokens need COATCHECK_JWT_PRIVATE_KEY"),
        (
            {"algorithm": "RS256", "private_key_pem": b""},
            "RS256 tokens need COATCHECK_JWT_PRIVATE_KEY",
        ),
    ],
)
def test_token_configuration_messages(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=exactly(message)):
        TokenSigner(issuer="i", audience="a", **kwargs)  # type: ignore[arg-type]


def test_a_small_rsa_key_message() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(
        ConfigurationError,
        match=exactly("COATCHECK_JWT_PRIVATE_KEY: RSA keys need at least 2048 bits"),
    ):
        TokenSigner(algorithm="RS256", issuer="i", audience="a", private_key_pem=pem)


def test_errors_carry_their_details() -> None:
    error = CSRFError("bad_token")
    assert (error.reason, str(error)) == ("bad_token", "bad_token")
    throttled = Throttled(42)
    assert throttled.retry_after == 42
    assert str(throttled) == "too many failed logins; retry after 42 s"
