"""Second factors: TOTP, recovery codes, and the rules every factor follows (SPEC §8).

- A TOTP factor counts once one code confirms it; a code is accepted within
  one step (30 s) either side, and each time step once, by a conditional
  update of the factor's last step, so two requests racing with one code
  never both pass.
- Recovery codes: 10 single-use codes with 80 random bits each, issued with
  the first factor, stored as SHA-256, shown once; a new set kills the old.
- Every wrong code counts against the account's login throttle, like a wrong
  password, and is audited.
- WebAuthn credentials are kept as factors too (:mod:`.webauthn` checks them).

Nothing here knows about requests: the web layer hands in the client.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyotp
import segno

from ..core.errors import InvalidCode, Throttled
from ..users import models as events
from ..users.factors import TOTP, WEBAUTHN
from .client import NO_CLIENT, Client

if TYPE_CHECKING:
    from ..users.factors import FactorStore
    from ..users.models import Factor
    from .services import Services

#: How many recovery codes a set has.
RECOVERY_CODES = 10
#: The letters recovery codes are made of: no 0/o, 1/l/i to confuse.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 16
#: TOTP parameters (RFC 6238 defaults, what every authenticator app expects).
TOTP_STEP = 30
TOTP_DIGITS = 6
#: Longest code looked at; anything longer is wrong without more work.
MAX_CODE = 64
#: The second-factor methods a login can ask for.
TOTP_METHOD, RECOVERY_METHOD, WEBAUTHN_METHOD = "totp", "recovery", "webauthn"
#: What each method adds to a session's ``amr``.
AMR = {TOTP_METHOD: "otp", RECOVERY_METHOD: "recovery", WEBAUTHN_METHOD: "webauthn"}


@dataclass(frozen=True)
class TotpEnrolment:
    """A TOTP factor waiting for its first code: what the user's app needs."""

    id: int
    secret: str
    otpauth_uri: str
    qr_svg: str


def new_recovery_code() -> str:
    """Return one recovery code, as shown: four groups of four letters and digits."""
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4))


def recovery_code_hash(code: str) -> str | None:
    """Return the stored form of a recovery code as typed, or ``None`` if it cannot be one.

    Case, spaces and dashes do not matter.
    """
    normalized = "".join(code.split()).replace("-", "").lower()
    if len(normalized) != _RECOVERY_LENGTH or not set(normalized) <= set(_RECOVERY_ALPHABET):
        return None
    return hashlib.sha256(normalized.encode()).hexdigest()


class SecondFactors:
    """The second factors of users of coatcheck's own user store."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def store(self) -> FactorStore:
        """Return where factors are kept (the user store's database)."""
        return self.services.users.factors

    @property
    def available(self) -> bool:
        """Tell whether factors can be kept: only with coatcheck's own user store."""
        return self.services.uses_user_store

    def factors(self, user_id: int | str) -> list[Factor]:
        """Return the user's confirmed factors, oldest first."""
        key = _user_key(user_id)
        if key is None or not self.available:
            return []
        return self.store.of_user(key)

    def methods(self, user_id: int | str) -> list[str]:
        """Return the methods that can complete a login of this user (empty: none needed)."""
        factors = self.factors(user_id)
        if not factors:
            return []
        found = [TOTP_METHOD] if any(f.type == TOTP for f in factors) else []
        if any(f.type == WEBAUTHN for f in factors):
            found.append(WEBAUTHN_METHOD)
        key = _user_key(user_id)
        if key is not None and self.store.recovery_codes_left(key):
            found.append(RECOVERY_METHOD)
        return found

    def wanted(self, user_id: int | str, roles: Sequence[str]) -> bool:
        """Tell whether a login of this user must show a second factor: they have one,
        or the policy (``COATCHECK_REQUIRE_SECOND_FACTOR``) wants them to."""
        settings = self.services.settings
        if settings.require_second_factor and settings.requires_second_factor(roles):
            return True
        return bool(self.factors(user_id))

    def recovery_codes_left(self, user_id: int | str) -> int:
        """Return how many unused recovery codes the user has."""
        key = _user_key(user_id)
        return self.store.recovery_codes_left(key) if key is not None and self.available else 0

    # -- enrolment --------------------------------------------------------

    def begin_totp(self, user_id: int, username: str, name: str) -> TotpEnrolment:
        """Start a TOTP factor: a new secret, its ``otpauth://`` URI and QR code (SVG).

        It counts only once :meth:`confirm_totp` sees one of its codes.
        """
        secret = pyotp.random_base32(32)
        sealed = self.services.factor_sealer.seal(secret.encode())
        factor = self.store.add_totp(user_id, name, sealed)
        return self._enrolment(factor.id, secret, username)

    def unconfirmed_totp(self, user_id: int, username: str, factor_id: int) -> TotpEnrolment | None:
        """Return the enrolment of a TOTP factor still waiting for its first code (to show
        its QR code again), or ``None``. The secret is read from its sealed copy."""
        factor = self.store.get(user_id, factor_id)
        if factor is None or factor.type != TOTP or factor.confirmed:
            return None
        secret = self.services.factor_sealer.open(factor.secret or "")
        return None if secret is None else self._enrolment(factor.id, secret.decode(), username)

    def _enrolment(self, factor_id: int, secret: str, username: str) -> TotpEnrolment:
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).provisioning_uri(
            name=username, issuer_name=self.issuer
        )
        svg = segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#1d2330")
        return TotpEnrolment(factor_id, secret, uri, svg)

    @property
    def issuer(self) -> str:
        """Return the name authenticator apps show: the public host, else ``coatcheck``."""
        host = urlsplit(self.services.settings.public_url).hostname
        return host or "coatcheck"

    def confirm_totp(
        self, user_id: int, factor_id: int, code: str, *, client: Client = NO_CLIENT
    ) -> list[str] | None:
        """Confirm a TOTP factor with one of its codes; return recovery codes if it is the
        user's first factor (else ``None``).

        :raise InvalidCode: for a wrong code or an unknown or confirmed factor.
        """
        factor = self.store.get(user_id, factor_id)
        if factor is None or factor.type != TOTP or factor.confirmed:
            raise InvalidCode()
        step = self._totp_step(factor, code)
        if step is None or not self.store.use_totp_step(factor.id, step, confirm=True):
            raise InvalidCode()
        self.services.audit(
            events.FACTOR_ADDED,
            client=client,
            user_id=user_id,
            detail={"type": TOTP, "name": factor.name},
        )
        return self.after_new_factor(user_id, client=client)

    def after_new_factor(self, user_id: int, *, client: Client = NO_CLIENT) -> list[str] | None:
        """Issue recovery codes when the factor just added is the user's first."""
        if len(self.store.of_user(user_id)) != 1:
            return None
        return self.new_recovery_codes(user_id, client=client)

    def new_recovery_codes(self, user_id: int, *, client: Client = NO_CLIENT) -> list[str]:
        """Issue a new set of recovery codes (the old set dies); return them, to show once."""
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        self.store.replace_recovery_codes(user_id, [recovery_code_hash(c) or "" for c in codes])
        self.services.audit(
            events.RECOVERY_CODES_ISSUED,
            client=client,
            user_id=user_id,
            detail={"count": len(codes)},
        )
        return codes

    def rename(
        self, user_id: int, factor_id: int, name: str, *, client: Client = NO_CLIENT
    ) -> Factor | None:
        """Rename a factor of the user; ``None`` if they have none with this ID."""
        before = self.store.get(user_id, factor_id)
        factor = self.store.rename(user_id, factor_id, name)
        if factor is not None and before is not None:
            self.services.audit(
                events.FACTOR_RENAMED,
                client=client,
                user_id=user_id,
                detail={"type": factor.type, "before": before.name, "after": factor.name},
            )
        return factor

    def remove(self, user_id: int, factor_id: int, *, client: Client = NO_CLIENT) -> bool:
        """Remove a factor of the user (the last one takes the recovery codes with it)."""
        factor = self.store.remove(user_id, factor_id)
        if factor is None:
            return False
        if factor.confirmed:
            self.services.audit(
                events.FACTOR_REMOVED,
                client=client,
                user_id=user_id,
                detail={"type": factor.type, "name": factor.name, "passkey": factor.passkey},
            )
        return True

    def reset(self, user_id: int, *, client: Client = NO_CLIENT) -> int:
        """Remove every factor and recovery code of a user (an administrator's act) and end
        every session, series and token family of theirs; return how many factors went."""
        removed = self.store.remove_all(user_id)
        revoked = self.services.devices.count(user_id)
        self.services.devices.revoke_everything(str(user_id))
        self.services.audit(
            events.FACTORS_RESET,
            client=client,
            user_id=user_id,
            detail={"factors_removed": removed, "sessions_revoked": revoked},
        )
        return removed

    # -- checking ----------------------------------------------------------

    def check(
        self, user_id: int, username: str, method: str, code: str, *, client: Client = NO_CLIENT
    ) -> str:
        """Check a TOTP or recovery code of the user; return what it adds to ``amr``.

        Throttled like a password: every wrong code counts against the account.

        :raise Throttled: when the account from this address failed too often.
        :raise InvalidCode: for a wrong, replayed or spent code.
        """
        address = client.ip or ""
        throttle = self.services.throttle
        refusal = throttle.reserve(username, address)
        if refusal is not None:
            raise Throttled(refusal.wait, "wrong codes")
        if method == TOTP_METHOD:
            ok = self._use_totp(user_id, code)
        elif method == RECOVERY_METHOD:
            ok = self._use_recovery_code(user_id, code, client)
        else:
            ok = False
        if not ok:
            self.failed(user_id, username, method, client=client)
        throttle.succeeded(username, address)
        return AMR[method]

    def failed(
        self, user_id: int, username: str, method: str, *, client: Client = NO_CLIENT
    ) -> None:
        """Count and audit a failed second factor; raise :class:`InvalidCode`."""
        self.services.throttle.failed(username, client.ip or "")
        self.services.audit(
            events.SECOND_FACTOR_FAILED,
            client=client,
            user_id=user_id,
            username=username,
            detail={"method": method},
        )
        raise InvalidCode()

    def _use_totp(self, user_id: int, code: str) -> bool:
        for factor in self.factors(user_id):
            if factor.type != TOTP:
                continue
            step = self._totp_step(factor, code)
            if step is not None:
                return self.store.use_totp_step(factor.id, step)
        return False

    def _totp_step(self, factor: Factor, code: str) -> int | None:
        """Return the time step within ±1 whose code ``code`` is, or ``None``."""
        code = "".join(code.split())
        if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
            return None
        secret = self.services.factor_sealer.open(factor.secret or "")
        if secret is None:
            return None
        totp = pyotp.TOTP(secret.decode(), digits=TOTP_DIGITS, interval=TOTP_STEP)
        now = int(self.services.clock())
        found = None
        for offset in (-1, 0, 1):  # all three, so the time taken does not tell which matched
            at = now + offset * TOTP_STEP
            if hmac.compare_digest(totp.at(at), code):
                found = at // TOTP_STEP
        return found

    def _use_recovery_code(self, user_id: int, code: str, client: Client) -> bool:
        code_hash = recovery_code_hash(code[:MAX_CODE])
        if code_hash is None or not self.store.use_recovery_code(user_id, code_hash):
            return False
        self.services.audit(
            events.RECOVERY_CODE_USED,
            client=client,
            user_id=user_id,
            detail={"left": self.store.recovery_codes_left(user_id)},
        )
        return True


def _user_key(user_id: object) -> int | None:
    """Return the ID of a user of coatcheck's user store, or ``None`` (an application's own)."""
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        return user_id
    text = str(user_id)
    return int(text) if text.isascii() and text.isdigit() else None


def factor_json(factor: Factor) -> dict[str, object]:
    """Return the API form of a factor (``GET /api/2fa``)."""
    return {
        "id": factor.id,
        "type": factor.type,
        "name": factor.name,
        "passkey": factor.passkey,
        "created_at": factor.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "last_used_at": factor.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if factor.last_used_at
        else None,
    }
