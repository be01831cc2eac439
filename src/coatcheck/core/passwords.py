"""Password policy and password hashing.

The policy follows NIST SP 800-63B: a minimum and a maximum length, no
composition rules, and a refusal of common passwords and of the username.

Hashing is done by :mod:`pwdlib`: Argon2id with the OWASP parameters for new
hashes; bcrypt hashes imported from other systems still verify, and any hash
made with another algorithm or other parameters is replaced on the next
successful login (see :meth:`PasswordHasher.verify`).
"""

from __future__ import annotations

import functools
import secrets
import unicodedata
from importlib import resources

import argon2.exceptions
from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from coatcheck.core.errors import ConfigurationError, PasswordRejected

__all__ = [
    "BCRYPT_MAX_BYTES",
    "PasswordHasher",
    "check_password_policy",
    "is_common_password",
    "is_repetitive",
]

#: bcrypt only ever reads this many bytes of a password.
BCRYPT_MAX_BYTES = 72

# What verifying may raise for a malformed hash or an unencodable password.
# InvalidHashError and UnicodeEncodeError are ValueErrors, as is bcrypt's
# "Invalid salt".
_VERIFY_ERRORS = (ValueError, TypeError, argon2.exceptions.Argon2Error, PwdlibError)


def check_password_policy(
    password: str,
    *,
    username: str | None = None,
    min_length: int = 12,
    max_length: int = 256,
) -> None:
    """Refuse a new password that the policy does not allow.

    Lengths are counted in Unicode code points. There are no composition rules
    (NIST SP 800-63B): a long passphrase of lowercase words is fine.

    :param password: the proposed password.
    :param username: the account's username; the password may not be built
        from it alone (``admin admin 2024`` for ``admin``), compared
        case-insensitively; a password that merely contains it is fine.
    :param min_length: the least number of characters.
    :param max_length: the most number of characters.
    :raise PasswordRejected: with ``reason`` ``too_short``, ``too_long``,
        ``same_as_username``, ``repetitive``, ``common`` or ``not_text`` (lone surrogates,
        which cannot be encoded). The message never repeats the password.
    """
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise PasswordRejected(
            "not_text", "The password contains characters that are not valid text."
        ) from None
    length = len(password)
    if length < min_length:
        raise PasswordRejected("too_short", f"Use a password of at least {min_length} characters.")
    if length > max_length:
        raise PasswordRejected("too_long", f"Use a password of at most {max_length} characters.")
    if username is not None and _is_same_as_username(password, username):
        raise PasswordRejected("same_as_username", "Do not use your username as your password.")
    if is_repetitive(password):
        raise PasswordRejected(
            "repetitive",
            "This password is too repetitive (a few characters or one short part repeated). "
            "Choose another; a few unrelated words make a good one.",
        )
    if is_common_password(password):
        raise PasswordRejected(
            "common",
            "This password is one of the most commonly used and easily guessed. "
            "Choose another; a few unrelated words make a good one.",
        )


def is_common_password(password: str) -> bool:
    """Return whether ``password`` is on the bundled list of common passwords.

    The comparison ignores case and Unicode compatibility forms, so
    ``PASSWORD`` and full-width ``ｐａｓｓｗｏｒｄ`` both match ``password``.
    A password of nothing but whitespace counts as common too.
    """
    folded = _fold(password)
    return not folded.strip() or folded in _common_passwords()


@functools.cache
def _common_passwords() -> frozenset[str]:
    """Load the list of common passwords once, on first use."""
    text = (
        resources.files("coatcheck.core.data")
        .joinpath("common-passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line for line in (raw.strip() for raw in text.splitlines()) if line and line[0] != "#"
    )


def _fold(text: str) -> str:
    """Return ``text`` in the form used to compare it ignoring case."""
    return unicodedata.normalize("NFKC", text).casefold()


#: A password of at most this many distinct characters is repetitive.
_FEWEST_DISTINCT = 3
#: A part repeated this often, making up the whole password, is repetitive.
_MOST_REPEATS = 3


def is_repetitive(password: str) -> bool:
    """Return whether ``password`` is one short part repeated, or very few characters.

    ``aaaaaaaaaaaaaaaa``, ``abcabcabcabc`` and ``ab ab ab ab ab ab`` are;
    whitespace does not count, and a password of nothing but whitespace is
    left to :func:`is_common_password`.
    """
    folded = "".join(_fold(password).split())
    if not folded:
        return False
    if len(set(folded)) <= _FEWEST_DISTINCT:
        return True
    length = len(folded)
    return any(
        length % size == 0 and folded == folded[:size] * (length // size)
        for size in range(1, length // _MOST_REPEATS + 1)
    )


def _is_same_as_username(password: str, username: str) -> bool:
    """Tell whether ``password`` is the username, repeated or with only digits and marks around."""
    name = _fold(username.strip())
    # An empty username would otherwise "equal" a password of spaces.
    if not name:
        return False
    folded = _fold(password.strip())
    if name not in folded:
        return False
    rest = folded.replace(name, "")
    return not any(char.isalpha() for char in rest)


class _TruncatingBcryptHasher(BcryptHasher):
    """Verify bcrypt hashes against the first 72 bytes of the password.

    bcrypt's algorithm reads at most 72 bytes, and the implementations that
    made the hashes we import (older Python ``bcrypt``, PHP, Node, OpenBSD)
    silently ignored the rest. ``bcrypt`` 5 raises :exc:`ValueError` instead,
    which would lock out every user whose long password was accepted there.
    Truncating the UTF-8 bytes reproduces what those systems hashed. New
    hashes are Argon2id of the whole password, so this applies only until the
    user's next login re-hashes.
    """

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        secret = password.encode("utf-8") if isinstance(password, str) else password
        return super().verify(secret[:BCRYPT_MAX_BYTES], hash)


class PasswordHasher:
    """Hash passwords with Argon2id and verify Argon2 and bcrypt hashes.

    The defaults are the OWASP recommendation for Argon2id: 19 MiB of memory,
    two iterations, one lane.

    :param memory_cost: memory in KiB.
    :param time_cost: number of iterations.
    :param parallelism: number of lanes.
    :raise ConfigurationError: if the parameters are not ones Argon2 accepts.
    """

    def __init__(
        self, *, memory_cost: int = 19456, time_cost: int = 2, parallelism: int = 1
    ) -> None:
        if time_cost < 1 or parallelism < 1 or memory_cost < 8 * parallelism:
            raise ConfigurationError(
                "Argon2 needs time_cost >= 1, parallelism >= 1 and"
                " memory_cost >= 8 * parallelism (KiB)."
            )
        self.memory_cost = memory_cost
        self.time_cost = time_cost
        self.parallelism = parallelism
        argon = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        # The first hasher makes new hashes; a hash identified by another one,
        # or by the first with other parameters, is re-hashed after a success.
        self._hash = PasswordHash((argon, _TruncatingBcryptHasher()))
        self._dummy_hash: str | None = None

    @classmethod
    def fast_for_tests(cls) -> PasswordHasher:
        """Return a hasher with cheap parameters, for test suites only.

        Its hashes take a millisecond to guess instead of tens: never use it to
        store real passwords.
        """
        return cls(memory_cost=1024, time_cost=1, parallelism=1)

    def hash(self, password: str) -> str:
        """Return the Argon2id hash of ``password``, salted at random."""
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check ``password`` against a stored hash.

        The comparison is done in constant time by ``argon2`` or ``bcrypt``.
        For a bcrypt hash only the first 72 UTF-8 bytes of the password count,
        as they did for the system that made it.

        A malformed or unknown hash, or a password that cannot be encoded,
        never raises: it does not match. An unrecognised hash costs the time
        of :meth:`dummy_verify`, so an account without a usable hash cannot be
        told apart by timing.

        :return: ``(valid, new_hash)``. ``new_hash`` is given after a success
            when the stored hash is bcrypt or Argon2 with other parameters:
            store it in place of the old one. Otherwise it is ``None``.
        """
        try:
            return self._hash.verify_and_update(password, password_hash)
        except _VERIFY_ERRORS:
            self.dummy_verify(password)
            return False, None

    def dummy_verify(self, password: str) -> None:
        """Spend the time a real verification takes, and learn nothing.

        Call this when the username is unknown, so that the answer takes as
        long as for a known user with a wrong password. The hash checked is of
        a random secret, made once with the current parameters.
        """
        if self._dummy_hash is None:
            self._dummy_hash = self._hash.hash(secrets.token_urlsafe(32))
        # Bytes, so that a password that is not valid UTF-8 costs the same.
        secret = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else b""
        self._hash.verify(secret, self._dummy_hash)
