"""WebAuthn credentials: second factors and passkeys (SPEC §8), with py_webauthn.

- A credential is registered either as a **second factor** (resident key
  discouraged, user verification preferred) or as a **passkey**
  (discoverable, user verification required), and keeps that flag: only a
  passkey logs in on its own, and only with user verification.
- Every ceremony has a :class:`Ceremony`: its challenge, purpose, deadline
  and user, kept by the web layer between the two requests and used once.
- A second-factor or step-up assertion is accepted only from a credential of
  the user it was asked for; a passkey login only from a passkey.
- The sign counter must grow (when the authenticator keeps one): a counter
  that does not is a sign of a cloned authenticator, refused and audited.
  It is advanced by a compare-and-set, so one assertion replayed in two
  racing requests passes once.
- Whatever fails to verify is :class:`~coatcheck.core.errors.InvalidCode`,
  counted against the account's throttle where the account is known, with
  nothing written; a credential that is not even WebAuthn's JSON is
  :class:`MalformedCredential`.

The relying party (ID and origin) is handed in by the web layer, from
``COATCHECK_PUBLIC_URL`` or the request's own origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..core.errors import CoatcheckError, InvalidCode, Throttled
from ..users import models as events
from ..users.factors import WEBAUTHN, DuplicateCredential, clean_factor_name
from .client import NO_CLIENT, Client
from .factors import WEBAUTHN_METHOD

if TYPE_CHECKING:
    from ..users.models import Factor
    from .services import Services

#: Seconds between the options and the browser's answer.
CEREMONY_LIFETIME = 300.0
#: What a ceremony is for.
REGISTER, LOGIN, SECOND_FACTOR, REAUTH = "register", "login", "second_factor", "reauth"
PURPOSES = (REGISTER, LOGIN, SECOND_FACTOR, REAUTH)
#: The relying party's name authenticators show.
RP_NAME = "coatcheck"
#: The names a credential gets when the user gives none.
DEFAULT_NAMES = {True: "Passkey", False: "Security key"}
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
_MAX_USERNAME = 256


class MalformedCredential(CoatcheckError, ValueError):
    """A credential that is not the JSON form of a WebAuthn response (HTTP 400 ``invalid``)."""


@dataclass(frozen=True)
class RelyingParty:
    """Who the credentials are for: the RP ID (a host name) and the one origin accepted."""

    id: str
    origin: str
    name: str = RP_NAME

    @classmethod
    def from_origin(cls, url: str) -> RelyingParty:
        """Return the relying party of an origin (``https://auth.example.com[:port]``).

        The RP ID is the host without its port; the origin is scheme, host and port.

        :raise ValueError: for a URL with no scheme or host.
        """
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an origin: {url!r}")
        return cls(id=parts.hostname, origin=f"{parts.scheme}://{parts.netloc.lower()}")


@dataclass(frozen=True)
class Ceremony:
    """A WebAuthn ceremony under way: what the browser's answer must match.

    Kept as JSON in the session between the options and the answer, and used
    once whatever the outcome.
    """

    #: One of :data:`PURPOSES`.
    purpose: str
    #: The challenge sent, base64url.
    challenge: str
    #: When it stops being accepted (the services' clock).
    until: float
    #: The user whose credential is registered or asked for; ``None`` for a passkey login.
    user_id: int | None = None
    #: Registration: the new credential's name.
    name: str = ""
    #: Registration: a passkey (else a second factor).
    passkey: bool = False
    #: Passkey login: the username typed, if any (the credential must be theirs).
    username: str | None = None

    def to_meta(self) -> dict[str, Any]:
        """Return the JSON form kept in the session."""
        return asdict(self)

    @classmethod
    def from_meta(cls, raw: object) -> Ceremony | None:
        """Return the ceremony kept as ``raw``, or ``None`` if none or malformed."""
        if not isinstance(raw, Mapping):
            return None
        try:
            user_id = raw.get("user_id")
            username = raw.get("username")
            ceremony = cls(
                purpose=str(raw["purpose"]),
                challenge=str(raw["challenge"]),
                until=float(raw["until"]),
                user_id=int(user_id) if user_id is not None else None,
                name=str(raw.get("name", "")),
                passkey=raw.get("passkey") is True,
                username=str(username) if username is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None
        return ceremony if ceremony.purpose in PURPOSES else None

    def check(self, purpose: str, now: float) -> None:
        """Refuse (:class:`InvalidCode`) unless this ceremony is for ``purpose`` and still on."""
        if self.purpose != purpose or now >= self.until:
            raise InvalidCode()

    @property
    def challenge_bytes(self) -> bytes:
        """Return the challenge as sent."""
        return base64url_to_bytes(self.challenge)


def user_handle(user_id: int) -> bytes:
    """Return the WebAuthn user handle of a user: their ID, which names no one."""
    return str(user_id).encode("ascii")


def parse_registration(credential: object) -> RegistrationCredential:
    """Return a registration response from its JSON form (``PublicKeyCredential.toJSON()``).

    :raise MalformedCredential: if it is not one.
    """
    if not isinstance(credential, dict):
        raise MalformedCredential("credential must be a JSON object")
    try:
        return parse_registration_credential_json(credential)
    except Exception as exc:  # py_webauthn raises assorted errors on bad base64url
        raise MalformedCredential(f"credential is malformed: {exc}") from None


def parse_assertion(credential: object) -> AuthenticationCredential:
    """Return an authentication response from its JSON form.

    :raise MalformedCredential: if it is not one.
    """
    if not isinstance(credential, dict):
        raise MalformedCredential("credential must be a JSON object")
    try:
        return parse_authentication_credential_json(credential)
    except Exception as exc:  # py_webauthn raises assorted errors on bad base64url
        raise MalformedCredential(f"credential is malformed: {exc}") from None


class WebAuthnCredentials:
    """Register and check the WebAuthn credentials of coatcheck's own users."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def credentials(self, user_id: int) -> list[Factor]:
        """Return the user's WebAuthn credentials, oldest first."""
        return [f for f in self.services.factors.factors(user_id) if f.type == WEBAUTHN]

    def _require_store(self) -> None:
        """Refuse when there is no user store to keep credentials in (an application's
        own users, loaded by its user loader, have no factors here)."""
        if not self.services.factors.available:
            raise InvalidCode()

    def _ceremony(self, purpose: str, challenge: bytes, **fields: Any) -> Ceremony:
        self._require_store()
        until = self.services.clock() + CEREMONY_LIFETIME
        return Ceremony(purpose, bytes_to_base64url(challenge), until, **fields)

    # -- registration ------------------------------------------------------

    def begin_registration(
        self, rp: RelyingParty, user_id: int, username: str, name: str | None, *, passkey: bool
    ) -> tuple[dict[str, Any], Ceremony]:
        """Return the creation options for a new credential of the user, and its ceremony.

        The user's credentials are excluded (an authenticator registers once).

        :raise ValueError: for an unusable name.
        """
        name = clean_factor_name(name or DEFAULT_NAMES[passkey])
        selection = AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED
            if passkey
            else ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.REQUIRED
            if passkey
            else UserVerificationRequirement.PREFERRED,
        )
        options = generate_registration_options(
            rp_id=rp.id,
            rp_name=rp.name,
            user_name=username,
            user_id=user_handle(user_id),
            timeout=int(CEREMONY_LIFETIME * 1000),
            authenticator_selection=selection,
            exclude_credentials=[_descriptor(f) for f in self.credentials(user_id)],
        )
        json = options_to_json_dict(options)
        if passkey:  # the browser tells whether the credential is discoverable
            json["extensions"] = {"credProps": True}
        ceremony = self._ceremony(
            REGISTER, options.challenge, user_id=user_id, name=name, passkey=passkey
        )
        return json, ceremony

    def finish_registration(
        self,
        rp: RelyingParty,
        ceremony: Ceremony,
        credential: object,
        *,
        client: Client = NO_CLIENT,
    ) -> tuple[Factor, list[str] | None]:
        """Check the browser's answer to :meth:`begin_registration` and keep the credential.

        Return it, and recovery codes if it is the user's first factor.

        :raise MalformedCredential: if ``credential`` is not a registration response.
        :raise InvalidCode: if it does not verify (or is registered already).
        """
        ceremony.check(REGISTER, self.services.clock())
        self._require_store()
        parsed = parse_registration(credential)
        if ceremony.user_id is None:
            raise InvalidCode()
        if ceremony.passkey and _discoverable(credential) is False:
            raise InvalidCode()  # the authenticator could not keep a discoverable credential
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=ceremony.challenge_bytes,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                require_user_verification=ceremony.passkey,
            )
        except Exception:  # py_webauthn raises assorted errors on crafted input
            raise InvalidCode() from None
        transports = [t.value for t in parsed.response.transports or ()]
        try:
            factor = self.services.users.factors.add_webauthn(
                ceremony.user_id,
                ceremony.name,
                passkey=ceremony.passkey,
                credential_id=bytes_to_base64url(verified.credential_id),
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                transports=transports,
                backup_eligible=verified.credential_device_type
                == CredentialDeviceType.MULTI_DEVICE,
                backup_state=verified.credential_backed_up,
            )
        except DuplicateCredential:
            raise InvalidCode() from None
        self.services.audit(
            events.FACTOR_ADDED,
            client=client,
            user_id=ceremony.user_id,
            detail={"type": WEBAUTHN, "name": factor.name, "passkey": factor.passkey},
        )
        return factor, self.services.factors.after_new_factor(ceremony.user_id, client=client)

    # -- assertions --------------------------------------------------------

    def begin_assertion(
        self, rp: RelyingParty, purpose: str, *, user_id: int | None = None, username: str = ""
    ) -> tuple[dict[str, Any], Ceremony]:
        """Return the request options of an assertion, and its ceremony.

        A passkey login (:data:`LOGIN`) lists no credential (the authenticator
        offers its discoverable ones) and requires user verification; a
        username given is only remembered, so that a known and an unknown one
        answer alike. A second factor or step-up lists the user's credentials.

        :raise InvalidCode: for a second factor or step-up of a user who has none.
        """
        if purpose == LOGIN:
            options = generate_authentication_options(
                rp_id=rp.id,
                timeout=int(CEREMONY_LIFETIME * 1000),
                user_verification=UserVerificationRequirement.REQUIRED,
            )
            typed = username.strip()[:_MAX_USERNAME] or None
            return options_to_json_dict(options), self._ceremony(
                LOGIN, options.challenge, username=typed
            )
        if purpose not in (SECOND_FACTOR, REAUTH) or user_id is None:
            raise ValueError(f"an assertion for {purpose!r} needs a user")
        credentials = self.credentials(user_id)
        if not credentials:  # an empty list would let the browser offer anyone's passkeys
            raise InvalidCode()
        options = generate_authentication_options(
            rp_id=rp.id,
            timeout=int(CEREMONY_LIFETIME * 1000),
            allow_credentials=[_descriptor(f) for f in credentials],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return options_to_json_dict(options), self._ceremony(
            purpose, options.challenge, user_id=user_id
        )

    def verify_assertion(
        self,
        rp: RelyingParty,
        ceremony: Ceremony,
        credential: object,
        *,
        client: Client = NO_CLIENT,
    ) -> Factor:
        """Check the browser's answer to :meth:`begin_assertion`; return the credential used.

        :raise MalformedCredential: if ``credential`` is not an assertion.
        :raise Throttled: when the account failed too often from this address.
        :raise InvalidCode: for anything that does not verify: an unknown
            credential, another user's, a second-factor credential in a
            passkey login, the wrong origin or RP ID, no user verification
            where required, a counter that did not grow.
        """
        if ceremony.purpose == REGISTER:
            raise InvalidCode()
        ceremony.check(ceremony.purpose, self.services.clock())
        parsed = parse_assertion(credential)
        factor = self._stored(parsed)
        if ceremony.purpose == LOGIN:
            owner = factor.user_id if factor is not None else None
        else:
            owner = ceremony.user_id
        username = self._username(owner)
        if owner is None or username is None:
            raise InvalidCode()  # no account to count against: an unknown credential
        address = client.ip or ""
        refusal = self.services.throttle.reserve(username, address)
        if refusal is not None:
            raise Throttled(refusal.wait, "wrong codes")
        if factor is None or not self._acceptable(factor, ceremony, parsed, username):
            self.services.factors.failed(owner, username, WEBAUTHN_METHOD, client=client)
            raise AssertionError("unreachable")  # failed() always raises
        self._verify(rp, ceremony, parsed, factor, username, client)
        self.services.throttle.succeeded(username, address)
        return factor

    def _stored(self, parsed: AuthenticationCredential) -> Factor | None:
        self._require_store()
        if bytes_to_base64url(parsed.raw_id) != parsed.id:
            return None
        factor = self.services.users.factors.by_credential_id(parsed.id)
        if factor is None or factor.type != WEBAUTHN or not factor.confirmed:
            return None
        return factor

    def _username(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        user = self.services.load_user(str(user_id))
        name = getattr(user, "username", None)
        return str(name) if name is not None else None

    def _acceptable(
        self, factor: Factor, ceremony: Ceremony, parsed: AuthenticationCredential, username: str
    ) -> bool:
        """Tell whether this credential may answer this ceremony at all."""
        if ceremony.purpose != LOGIN:
            return factor.user_id == ceremony.user_id
        handle = parsed.response.user_handle
        return (
            factor.passkey  # a second-factor credential never logs in alone
            and (handle is None or handle == user_handle(factor.user_id))
            and (
                ceremony.username is None
                or ceremony.username.casefold() == username.strip().casefold()
            )
        )

    def _verify(
        self,
        rp: RelyingParty,
        ceremony: Ceremony,
        parsed: AuthenticationCredential,
        factor: Factor,
        username: str,
        client: Client,
    ) -> None:
        """Check the signature and the counter, then advance the stored counter once."""
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=ceremony.challenge_bytes,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                credential_public_key=base64url_to_bytes(factor.public_key or ""),
                # 0: the counter is checked below, once the signature is known good,
                # so that a clone is told apart from a forgery.
                credential_current_sign_count=0,
                require_user_verification=ceremony.purpose == LOGIN,
            )
        except Exception:  # py_webauthn raises assorted errors on crafted input
            self.services.factors.failed(factor.user_id, username, WEBAUTHN_METHOD, client=client)
            raise AssertionError("unreachable") from None
        new, old = verified.new_sign_count, factor.sign_count
        if (new or old) and new <= old:
            self.services.audit(
                events.CREDENTIAL_CLONED,
                client=client,
                user_id=factor.user_id,
                username=username,
                detail={"factor_id": factor.id, "name": factor.name, "stored": old, "sent": new},
            )
            self.services.factors.failed(factor.user_id, username, WEBAUTHN_METHOD, client=client)
        if not self.services.users.factors.use_webauthn(
            factor.id, old, new, verified.credential_backed_up
        ):  # another request used this counter value first: a replay
            self.services.factors.failed(factor.user_id, username, WEBAUTHN_METHOD, client=client)


def _descriptor(factor: Factor) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in factor.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(factor.credential_id or ""), transports=transports or None
    )


def _discoverable(credential: object) -> bool | None:
    """Return what the browser said of the credential's discoverability (credProps), if anything."""
    if not isinstance(credential, dict):
        return None
    results = credential.get("clientExtensionResults")
    props = results.get("credProps") if isinstance(results, dict) else None
    rk = props.get("rk") if isinstance(props, dict) else None
    return rk if isinstance(rk, bool) else None
