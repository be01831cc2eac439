"""How sure a login is: the assurance level, the methods used, and when (SPEC §8).

Every session, remember-me series and token family carries the assurance
it was established at, in its meta:

- ``aal``: 1 after a password alone, 2 after a second factor or a passkey;
- ``amr``: the methods used, in the order used, from :data:`METHODS`;
- ``auth_at``: when the last password, factor or step-up check passed.

A remembered login and a refreshed token carry on the assurance they were
issued at: neither is a new authentication. Records from before assurance
was recorded read as a password login at their creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The authentication methods (RFC 8176 names where one exists).
METHODS = ("pwd", "otp", "recovery", "webauthn", "passkey")
#: Second factors: with a password, a login is two-factor (``aal`` 2).
_SECOND = frozenset({"otp", "recovery", "webauthn"})


def _level(methods: tuple[str, ...]) -> int:
    """Return 2 for a passkey, or a password with a second factor; 1 otherwise.

    A passkey is two factors in one (the device, and the PIN or biometric that
    user verification requires); a second factor alone is one factor.
    """
    if "passkey" in methods or ("pwd" in methods and _SECOND & set(methods)):
        return 2
    return 1


AAL, AMR, AUTH_AT = "aal", "amr", "auth_at"


@dataclass(frozen=True)
class Assurance:
    """The assurance of one login."""

    aal: int
    amr: tuple[str, ...]
    authenticated_at: float

    @classmethod
    def of(cls, methods: tuple[str, ...], at: float) -> Assurance:
        """Return the assurance of a login by ``methods`` (at least one, each known) at ``at``."""
        unknown = [m for m in methods if m not in METHODS]
        if not methods or unknown:
            raise ValueError(f"authentication methods must be some of {METHODS}, not {methods}")
        return cls(_level(methods), tuple(dict.fromkeys(methods)), at)

    @classmethod
    def password(cls, at: float) -> Assurance:
        """Return the assurance of a password alone."""
        return cls.of(("pwd",), at)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], created_at: float) -> Assurance:
        """Read a record's assurance; a record from before assurance is a password login."""
        amr = meta.get(AMR)
        methods = tuple(str(m) for m in amr) if isinstance(amr, list) and amr else ("pwd",)
        at = meta.get(AUTH_AT)
        when = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else created_at
        aal = meta.get(AAL)
        level = aal if type(aal) is int and aal in (1, 2) else _level(methods)
        return cls(level, methods, when)

    def renewed(self, methods: tuple[str, ...], at: float) -> Assurance:
        """Return this assurance after a step-up by ``methods`` at ``at``: the methods
        join the ones used, and ``authenticated_at`` becomes ``at``."""
        return Assurance.of((*self.amr, *methods), at)

    def to_meta(self) -> dict[str, Any]:
        """Return the meta entries that record this assurance."""
        return {AAL: self.aal, AMR: list(self.amr), AUTH_AT: self.authenticated_at}

    @property
    def acr(self) -> str:
        """The ``acr`` claim of an access token: ``aal1`` or ``aal2``."""
        return f"aal{self.aal}"
