"""Account mail (SPEC §9): password reset, address verification, security notices.

- **Reset.** A request stores a *request* in the outbox (the typed login, no
  lookup), the same work for a known and an unknown login. The background
  sender resolves it: a user with an address gets a one-time link
  (``PUBLIC_URL/reset/<token>``, 30 minutes, at most 3 an hour, dead once the
  password changes) written in the same transaction as the mail. Using it sets
  the password and ends every session, series and token family of the user.
- **Verification.** A link to ``PUBLIC_URL/verify-email/<token>`` confirms an
  address; a new address applies only when confirmed, and the old one is told.
- **Notices.** The security events of :data:`NOTICE_EVENTS` put a notice in
  the outbox in the transaction of their audit row; it is written out when
  sent, to the address of that moment (or the old address, for a change).

Links are built from ``COATCHECK_PUBLIC_URL``, never from a request. Rendering
(the templates) is handed in by the web layer: this module knows no Jinja.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..core.errors import CoatcheckError, Throttled
from ..core.passwords import check_password_policy
from ..users import models as events
from ..users.outbox import NewMail, OutboxMail
from .client import NO_CLIENT, Client

if TYPE_CHECKING:
    from ..users import User
    from .services import Services

RESET, VERIFY = "reset", "verify"
#: Seconds a reset link works.
RESET_LIFETIME = 1800.0
#: Seconds a verification link works.
VERIFY_LIFETIME = 2 * 86400.0
#: Reset mails per account per hour; past it, requests still answer 202 and send nothing.
RESETS_PER_HOUR = 3
#: Outbox kinds.
RESET_MAIL, VERIFY_MAIL, NOTICE_MAIL = "password_reset", "verify_email", "notice"
#: The base of links when no COATCHECK_PUBLIC_URL is set (development only: a mail URL
#: requires it).
DEVELOPMENT_BASE = "http://127.0.0.1:5555"
#: Security events that mail their user a notice.
NOTICE_EVENTS = frozenset(
    {
        events.PASSWORD_CHANGED,
        events.PASSWORD_RESET,
        events.EMAIL_CHANGED,
        events.FACTOR_ADDED,
        events.FACTOR_REMOVED,
        events.FACTORS_RESET,
        events.RECOVERY_CODE_USED,
        events.REMEMBER_THEFT,
        events.NEW_DEVICE,
    }
)
#: Longest login kept for a reset request.
MAX_LOGIN = 256


@dataclass(frozen=True)
class RenderedMail:
    """A mail written out from its template."""

    subject: str
    text: str
    html: str


#: Writes out a mail: (kind, context) -> subject, text and HTML.
Render = Callable[[str, Mapping[str, Any]], RenderedMail]


class InvalidMailToken(CoatcheckError):
    """A mail link that is unknown, spent, expired, or no longer valid."""


def notice_mail(event: str, user_id: int, detail: Mapping[str, Any] | None) -> NewMail:
    """Return the outbox request of a security notice (written out when sent)."""
    return NewMail(
        kind=NOTICE_MAIL,
        to_addr=None,
        user_id=user_id,
        payload={"event": event, "detail": dict(detail or {})},
    )


class AccountMail:
    """Reset, verification and notices over the user store, its outbox and tokens."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def link(self, path: str) -> str:
        """Return ``path`` on the public URL (never a request's Host)."""
        base = self.services.settings.public_url or DEVELOPMENT_BASE
        return base.rstrip("/") + path

    def _now(self) -> float:
        # The user store's clock: the times of tokens and mails are its own.
        return self.services.users.clock()

    # -- password reset -------------------------------------------------------------

    def request_reset(self, login: str, *, client: Client = NO_CLIENT) -> None:
        """Queue a reset for ``login`` (a username or an address); the same work for any login.

        :raise Throttled: past the per-address limit (20 per 15 minutes).
        """
        refusal = self.services.throttle.reserve_reset(client.ip or "")
        if refusal is not None:
            raise Throttled(refusal.wait, "password reset requests from this address")
        self.services.users.outbox.add_now(
            NewMail(kind=RESET_MAIL, to_addr=None, payload={"login": login[:MAX_LOGIN]})
        )

    def resolve_reset(self, mail: OutboxMail, render: Render) -> OutboxMail | None:
        """Write out a queued reset: a token and its mail in one transaction, or ``None``
        (unknown login, no address, disabled, or 3 this hour already)."""
        users = self.services.users
        login = str((mail.payload or {}).get("login", ""))
        user = users.get_by_username(login) or users.get_by_email(login)
        if user is None or user.disabled or not user.email:
            return None
        secret = secrets.token_urlsafe(32)
        with users.transaction() as session:
            tokens = users.email_tokens
            if tokens.issued_since(session, user.id, RESET, self._now() - 3600) >= RESETS_PER_HOUR:
                return None
            tokens.add(
                session, user_id=user.id, purpose=RESET, secret=secret, lifetime=RESET_LIFETIME
            )
            written = render(
                RESET_MAIL,
                {
                    "user": user,
                    "link": self.link(f"/reset/{secret}"),
                    "minutes": int(RESET_LIFETIME // 60),
                },
            )
            if not users.outbox.resolve(
                session,
                mail,
                to_addr=user.email,
                subject=written.subject,
                text_body=written.text,
                html_body=written.html,
                user_id=user.id,
            ):
                raise InvalidMailToken("the request was taken over by another sender")
        self.services.audit(events.PASSWORD_RESET_REQUESTED, user_id=user.id)
        return users.outbox.get(mail.id)

    def reset_token(self, secret: str) -> tuple[Any, User]:
        """Return the valid reset token with this secret and its user.

        :raise InvalidMailToken: unknown, spent, expired, its user disabled, or the
            password changed since it was sent.
        """
        token = self._token(secret, RESET)
        user = self.services.users.get(token.user_id)
        if user is None or user.disabled:
            raise InvalidMailToken()
        changed = user.password_changed_at
        if changed is not None and changed >= token.created_at:
            raise InvalidMailToken()
        return token, user

    def reset_password(self, secret: str, new_password: str, *, client: Client = NO_CLIENT) -> User:
        """Set a new password with a reset link; every session, series and family ends.

        The user then logs in, through their second factor if they have one.

        :raise InvalidMailToken: see :meth:`reset_token`.
        :raise PasswordRejected: if the policy refuses the password.
        """
        services = self.services
        token, user = self.reset_token(secret)
        check_password_policy(new_password, username=user.username)
        password_hash = services.hasher.hash(new_password)
        users = services.users
        with users.transaction() as session:
            if not users.email_tokens.spend(session, token):
                raise InvalidMailToken()
            users.email_tokens.spend_all(session, user.id, RESET)
            user = users.set_password_hash_in(session, user.id, password_hash)
        revoked = services.devices.count(user.id)
        services.devices.revoke_everything(str(user.id))
        services.audit(
            events.PASSWORD_RESET,
            client=client,
            user_id=user.id,
            username=user.username,
            detail={"sessions_revoked": revoked},
        )
        return user

    # -- verification ----------------------------------------------------------------

    def send_verification(self, user: User, email: str, render: Render) -> None:
        """Mail ``email`` a link confirming it as ``user``'s address (earlier links die)."""
        users = self.services.users
        secret = secrets.token_urlsafe(32)
        written = render(
            VERIFY_MAIL,
            {
                "user": user,
                "email": email,
                "link": self.link(f"/verify-email/{secret}"),
                "change": (user.email or "").lower() not in ("", email.lower()),
                "hours": int(VERIFY_LIFETIME // 3600),
            },
        )
        with users.transaction() as session:
            users.email_tokens.spend_all(session, user.id, VERIFY)
            users.email_tokens.add(
                session,
                user_id=user.id,
                purpose=VERIFY,
                secret=secret,
                lifetime=VERIFY_LIFETIME,
                email=email,
            )
            users.outbox.add(
                session,
                NewMail(
                    kind=VERIFY_MAIL,
                    to_addr=email,
                    subject=written.subject,
                    text_body=written.text,
                    html_body=written.html,
                    user_id=user.id,
                ),
            )

    def confirm_email(self, secret: str, *, client: Client = NO_CLIENT) -> User:
        """Confirm the address a verification link was sent to; it becomes the user's.

        A changed address tells the old one (a notice).

        :raise InvalidMailToken: unknown, spent or expired.
        """
        token = self._token(secret, VERIFY)
        users = self.services.users
        before = users.get(token.user_id)
        if before is None or before.disabled:
            raise InvalidMailToken()
        with users.transaction() as session:
            if not users.email_tokens.spend(session, token):
                raise InvalidMailToken()
            user = users.set_email_in(session, token.user_id, token.email, verified=True)
        changed = bool(before.email) and (before.email or "").lower() != (user.email or "").lower()
        self.services.devices.update_meta(user.id, {"email": user.email, "email_verified": True})
        self.services.audit(
            events.EMAIL_CHANGED if changed else events.EMAIL_VERIFIED,
            client=client,
            user_id=user.id,
            username=user.username,
            detail={"to": before.email} if changed else None,
        )
        return user

    def _token(self, secret: str, purpose: str) -> Any:
        if not secret or len(secret) > 128:
            raise InvalidMailToken()
        token = self.services.users.email_tokens.find(secret, purpose)
        if token is None or token.used_at is not None:
            raise InvalidMailToken()
        if token.expires_at <= datetime.fromtimestamp(self._now(), UTC):
            raise InvalidMailToken()
        return token

    # -- notices ---------------------------------------------------------------------

    def resolve_notice(self, mail: OutboxMail, render: Render) -> OutboxMail | None:
        """Write out a security notice to the user's address (or, for a change, the old
        one); ``None`` when there is none to write to."""
        users = self.services.users
        payload = mail.payload or {}
        user = users.get(mail.user_id) if mail.user_id is not None else None
        if user is None:
            return None
        event = str(payload.get("event", ""))
        detail = payload.get("detail") or {}
        to_addr = detail.get("to") if event == events.EMAIL_CHANGED else user.email
        if not to_addr:
            return None
        written = render(
            NOTICE_MAIL,
            {"user": user, "event": event, "detail": detail, "link": self.link("/account")},
        )
        with users.transaction() as session:
            if not users.outbox.resolve(
                session,
                mail,
                to_addr=str(to_addr),
                subject=written.subject,
                text_body=written.text,
                html_body=written.html,
                user_id=user.id,
            ):
                return None
        return users.outbox.get(mail.id)

    def note_login_device(self, user_id: int, device: str, *, client: Client = NO_CLIENT) -> None:
        """Record the browser and OS of a login; a new one (for a user seen before, who
        wants to be told) is audited as ``new_device_login``, which mails a notice."""
        users = self.services.users
        seen_before = users.known_devices(user_id)
        if not users.note_device(user_id, device) or not seen_before:
            return
        user = users.get(user_id)
        if user is not None and user.notify_new_device:
            self.services.audit(
                events.NEW_DEVICE, client=client, user_id=user_id, detail={"device": device}
            )
