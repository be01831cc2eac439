"""Delivering the outbox (SPEC §9): transports, and the sender that leases, resolves, sends.

A :class:`MailSender` claims due mails from the outbox with a lease, turns
*requests* (a mail whose address is not known yet, such as a reset asked for
by login) into mails with the resolver of their ``kind``, hands each to a
transport and records the outcome under the lease it holds: sent; retried
with exponential backoff while the server is down or refusing; failed after
:data:`GIVE_UP_AFTER`; dropped when a request resolves to no mail.

Transports: :class:`SmtpTransport` (``COATCHECK_MAIL_URL``, the standard
library's :mod:`smtplib`) and :class:`MailboxTransport` (no URL: nothing leaves
the machine; the outbox is the development mailbox). A mail's body carries a
one-time link: it is never logged, only its ID, kind and subject.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING, Protocol

from ..core.errors import CoatcheckError, ConfigurationError
from ..core.logtext import escape_for_log
from ..core.mailurl import MailURL, parse_mail_url

if TYPE_CHECKING:
    from ..core.settings import Settings
    from ..users.outbox import OutboxMail, OutboxStore
    from .services import Services

log = logging.getLogger("coatcheck.mail")

#: Turns a leased request into a mail (``OutboxStore.resolve``, then the mail re-read),
#: or returns ``None``: nothing to send (the request is dropped).
Resolver = Callable[["OutboxMail"], "OutboxMail | None"]

#: The first retry's delay; each further one doubles it, up to :data:`MAX_BACKOFF`.
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
#: A mail not accepted this long after it was queued is failed.
GIVE_UP_AFTER = timedelta(hours=24)
#: Mails one pass claims at once (each is sent under a lease of ``mail_lease`` s).
BATCH = 10


class DeliveryError(CoatcheckError):
    """A mail was not delivered. ``retryable``: the server may take it later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Transport(Protocol):
    """Hands one built message to wherever mail goes."""

    def deliver(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""


class MailboxTransport:
    """The development mailbox: deliver nothing; the mail stays readable in the outbox."""

    #: The outbox is the mailbox: a sent mail keeps its text.
    keeps_bodies = True

    def deliver(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Accept the message and drop it (the outbox keeps it)."""

    def __repr__(self) -> str:
        return "MailboxTransport()"


class SmtpTransport:
    """Deliver over SMTP (``smtp://`` with optional STARTTLS, or ``smtps://``), one
    connection per mail."""

    #: Once a mail is with the SMTP server its text goes from the outbox: a copy of the
    #: database must not hold working reset links (their tokens are kept hashed).
    keeps_bodies = False

    def __init__(self, url: MailURL, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.tls_context = tls_context or ssl.create_default_context()

    def __repr__(self) -> str:
        return f"SmtpTransport({self.url.describe()!r})"

    def deliver(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Send ``message``; raise :class:`DeliveryError` (retryable for any server trouble)."""
        try:
            smtp = self._connect()
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH: fixable, so retried
            raise DeliveryError(
                f"{self.url.host}:{self.url.port} cannot: {exc}", retryable=True
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from None
        try:
            smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPNotSupportedError as exc:  # e.g. a non-ASCII address, no SMTPUTF8
            raise DeliveryError(
                f"the server cannot take this mail: {exc}", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from None
        finally:
            _quit(smtp)

    def _classify(self, exc: smtplib.SMTPException | OSError) -> DeliveryError:
        """Return the retryable error of a server that refused, broke off or did not answer."""
        if isinstance(exc, smtplib.SMTPResponseException):
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return DeliveryError(
                f"{self.url.host}:{self.url.port} answered {exc.smtp_code} {text}", retryable=True
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            replies = "; ".join(f"{code} {_text(reply)}" for code, reply in exc.recipients.values())
            return DeliveryError(
                f"{self.url.host}:{self.url.port} refused the recipient: {replies}", retryable=True
            )
        # Connection refused or reset, a timeout, a TLS failure, a server that hung up.
        return DeliveryError(
            f"{self.url.host}:{self.url.port} unreachable: {type(exc).__name__}: {exc}",
            retryable=True,
        )

    def _connect(self) -> smtplib.SMTP:
        url = self.url
        smtp: smtplib.SMTP
        if url.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                url.host, url.port, timeout=url.timeout, context=self.tls_context
            )
        else:
            smtp = smtplib.SMTP(url.host, url.port, timeout=url.timeout)
        try:
            smtp.ehlo()
            if url.starttls:
                smtp.starttls(context=self.tls_context)
                smtp.ehlo()
            if url.username is not None:
                smtp.login(url.username, url.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; a server that answers QUIT badly has taken the mail all the same."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def envelope_sender(mail_from: str) -> str:
    """Return the address of ``COATCHECK_MAIL_FROM`` (``name <addr>`` or ``addr``), or raise
    :class:`ConfigurationError`."""
    found = getaddresses([mail_from])
    if "\r" in mail_from or "\n" in mail_from or len(found) != 1 or "@" not in found[0][1]:
        raise ConfigurationError(
            f"COATCHECK_MAIL_FROM must be one address, e.g. 'coatcheck <no-reply@example.com>', "
            f"not {mail_from!r}"
        )
    return found[0][1]


def build_message(mail: OutboxMail, *, mail_from: str, date: datetime) -> EmailMessage:
    """Return the message of a resolved mail; raise a permanent :class:`DeliveryError` if it
    cannot be built (no address, a line break in a header, an invalid address)."""
    if not mail.to_addr:
        raise DeliveryError("the mail has no recipient", retryable=False)
    message = EmailMessage()
    try:
        to = Address(addr_spec=mail.to_addr)
        if not to.username or not to.domain:
            raise ValueError(f"invalid address {mail.to_addr!r}")
        message["From"] = mail_from
        message["To"] = to
        message["Subject"] = mail.subject or ""
        message["Date"] = format_datetime(date)
        message["Message-ID"] = mail.message_id
        message.set_content(mail.text_body or "")
        if mail.html_body:
            message.add_alternative(mail.html_body, subtype="html")
    except (ValueError, TypeError, IndexError) as exc:  # email's header parser raises these
        raise DeliveryError(f"the mail cannot be built: {exc}", retryable=False) from None
    return message


def build_transport(settings: Settings) -> Transport:
    """Return the transport the settings name: SMTP, or the development mailbox.

    Raise :class:`ConfigurationError` for an invalid mail URL or From address.
    """
    envelope_sender(settings.mail_from)
    if not settings.mail_url:
        return MailboxTransport()
    return SmtpTransport(parse_mail_url(settings.mail_url))


def default_owner() -> str:
    """Return this sender's lease owner: host, process and thread."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{threading.get_ident()}"


def backoff(attempts: int) -> timedelta:
    """Return the wait after a mail's ``attempts``-th failure (0: its first)."""
    if attempts >= 8:  # 30 s × 2^7 is past the cap already
        return MAX_BACKOFF
    delay: timedelta = FIRST_BACKOFF * (1 << attempts)
    return min(delay, MAX_BACKOFF)


@dataclass
class DeliveryReport:
    """What :meth:`MailSender.send_all` did, by outcome."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    dropped: int = 0
    skipped: int = 0
    outcomes: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def handled(self) -> int:
        """Return how many mails were taken in hand."""
        return self.sent + self.retrying + self.failed + self.dropped + self.skipped


class MailSender:
    """Deliver due outbox mails through ``transport``, under leases; see the module."""

    def __init__(
        self,
        services: Services,
        transport: Transport,
        resolvers: Mapping[str, Resolver] | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.services = services
        self.transport = transport
        self.resolvers = dict(resolvers or {})
        self._owner = owner
        self._sender = envelope_sender(services.settings.mail_from)

    @property
    def outbox(self) -> OutboxStore:
        """Return the outbox of the user database."""
        return self.services.users.outbox

    @property
    def owner(self) -> str:
        """Return the lease owner (computed now: a forked worker is another process)."""
        return self._owner or default_owner()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.services.clock(), UTC)

    def send_due(self, limit: int = BATCH, report: DeliveryReport | None = None) -> int:
        """Claim up to ``limit`` due mails and deliver each; return how many were claimed."""
        lease = self.services.settings.mail_lease
        mails = self.outbox.claim(self.owner, lease=lease, limit=limit)
        report = report if report is not None else DeliveryReport()
        for mail in mails:
            outcome = self._handle(mail, lease)
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.outcomes[mail.id] = outcome
        return len(mails)

    def send_all(self, limit: int = BATCH) -> DeliveryReport:
        """Deliver everything due now, pass after pass, until nothing is due (the CLI)."""
        report = DeliveryReport()
        while self.send_due(limit, report):
            pass
        return report

    def _handle(self, mail: OutboxMail, lease: float) -> str:
        """Resolve, send and record one leased mail; return its outcome."""
        if mail.lease_until is not None and mail.lease_until - self._now() < timedelta(
            seconds=lease / 2
        ):
            # The pass ran long: sending now could outlive the lease and another sender
            # would send it again. Left leased; due again when the lease runs out.
            return "skipped"
        try:
            resolved = self._resolve(mail)
        except Exception as exc:  # a database or template trouble: try again later
            log.exception("mail %s (%s): resolving failed", mail.id, mail.kind)
            return self._retry(mail, f"resolving failed: {type(exc).__name__}: {exc}")
        if resolved is None:
            return "dropped"
        try:
            message = build_message(
                resolved, mail_from=self.services.settings.mail_from, date=self._now()
            )
            self.transport.deliver(message, sender=self._sender, recipient=str(resolved.to_addr))
        except DeliveryError as exc:
            if not exc.retryable:
                return self._fail(resolved, str(exc))
            return self._retry(resolved, str(exc))
        except Exception as exc:  # a transport's bug must not stop the sender
            log.exception("mail %s (%s): unexpected delivery error", mail.id, mail.kind)
            return self._retry(resolved, f"{type(exc).__name__}: {exc}")
        keep = getattr(self.transport, "keeps_bodies", False)
        if not self.outbox.mark_sent(resolved, keep_bodies=keep):
            log.warning(
                "mail %s (%s) was sent after its lease ran out; it may arrive twice",
                mail.id,
                mail.kind,
            )
        log.info(
            "mail %s (%s) sent: %s", mail.id, mail.kind, escape_for_log(resolved.subject or "")
        )
        return "sent"

    def _resolve(self, mail: OutboxMail) -> OutboxMail | None:
        """Return the mail to send, resolving a request; ``None``: dropped (recorded)."""
        if mail.to_addr is not None:
            return mail
        resolver = self.resolvers.get(mail.kind)
        if resolver is None:
            reason = f"no resolver for a request of kind {mail.kind!r}"
            log.warning("mail %s dropped: %s", mail.id, reason)
            self.outbox.mark_dropped(mail, reason)
            return None
        resolved = resolver(mail)
        if resolved is None or resolved.to_addr is None:
            log.info("mail %s (%s) dropped: the request resolved to no mail", mail.id, mail.kind)
            self.outbox.mark_dropped(mail, "resolved to no mail")
            return None
        return resolved

    def _retry(self, mail: OutboxMail, error: str) -> str:
        """Record a failed attempt: due again after the backoff, or failed past the deadline."""
        now = self._now()
        deadline = mail.created_at + GIVE_UP_AFTER
        if now >= deadline:
            return self._fail(mail, f"gave up after {mail.attempts + 1} attempts: {error}")
        retry_at = min(now + backoff(mail.attempts), deadline)
        log.warning(
            "mail %s (%s) not delivered, retry at %s: %s",
            mail.id,
            mail.kind,
            retry_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            escape_for_log(error),
        )
        self.outbox.mark_retry(mail, error, retry_at)
        return "retrying"

    def _fail(self, mail: OutboxMail, error: str) -> str:
        log.error("mail %s (%s) failed: %s", mail.id, mail.kind, escape_for_log(error))
        self.outbox.mark_failed(mail, error)
        return "failed"
