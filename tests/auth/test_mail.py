"""Delivering the outbox with no Flask: the mail URL, transports, the sender (SPEC §9).

A real SMTP server (aiosmtpd) takes the mails; time is a ManualClock.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from coatcheck.auth.mail import (
    GIVE_UP_AFTER,
    MailboxTransport,
    MailSender,
    SmtpTransport,
    backoff,
    build_transport,
    envelope_sender,
)
from coatcheck.auth.services import Services, build_services
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.mailurl import MailURL, parse_mail_url
from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.settings import Settings
from coatcheck.users.outbox import NewMail, OutboxMail

from ..conftest import TEST_SECRET_KEY
from ..smtp_server import Recorder, SmtpServer, authenticator, self_signed, smtp_server

FROM = "coatcheck <no-reply@example.com>"
SECRET_LINK = "https://auth.example.com/reset/one-time-secret-0123456789"


# The mail URL


def test_smtp_url_with_starttls_and_escaped_credentials() -> None:
    url = parse_mail_url(
        "smtp://mailer%40example.com:p%40ss%3Aw%2Fd@mail.example.com?starttls=true"
    )
    assert url == MailURL(
        scheme="smtp",
        host="mail.example.com",
        port=587,
        username="mailer@example.com",
        password="p@ss:w/d",
        starttls=True,
    )
    assert not url.implicit_tls


def test_smtps_url_defaults_to_465_and_takes_a_timeout() -> None:
    url = parse_mail_url("smtps://user:pw@mail.example.com?timeout=7.5")
    assert (url.port, url.implicit_tls, url.starttls, url.timeout) == (465, True, False, 7.5)
    assert parse_mail_url("smtp://localhost:2525").port == 2525
    assert parse_mail_url("SMTP://localhost").username is None


def test_the_password_is_never_shown() -> None:
    url = parse_mail_url("smtp://user:hunter2-secret@mail.example.com:587?starttls=true")
    for shown in (repr(url), str(url), url.describe()):
        assert "hunter2-secret" not in shown
    assert url.describe() == "smtp://user:***@mail.example.com:587?starttls=true"
    with pytest.raises(ConfigurationError) as caught:
        parse_mail_url("smtp://user:hunter2-secret@mail.example.com?bogus=1")
    assert "hunter2-secret" not in str(caught.value)
    assert "user:***@mail.example.com" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://mail.example.com", "smtp:// or smtps://"),
        ("mail.example.com:587", "smtp:// or smtps://"),
        ("smtp://", "no host"),
        ("smtp://:pw@", "no host"),
        ("smtp://mail.example.com:99999", "not a valid URL"),
        ("smtp://mail.example.com:port", "not a valid URL"),
        ("smtp://mail.example.com/path", "no path"),
        ("smtp://mail.example.com?ssl=1", "unknown option"),
        ("smtp://mail.example.com?starttls=maybe", "starttls takes"),
        ("smtp://mail.example.com?timeout=0", "timeout takes"),
        ("smtp://mail.example.com?timeout=nan", "timeout takes"),
        ("smtps://mail.example.com?starttls=true", "TLS already"),
        ("smtp://:secret@mail.example.com", "no user"),
    ],
)
def test_invalid_mail_urls_are_refused_at_start(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match="COATCHECK_MAIL_URL") as caught:
        parse_mail_url(url)
    assert words in str(caught.value)
    assert "secret" not in str(caught.value)


def test_mail_from_must_be_one_address() -> None:
    assert envelope_sender("coatcheck <no-reply@example.com>") == "no-reply@example.com"
    assert envelope_sender("no-reply@example.com") == "no-reply@example.com"
    for bad in ("nobody", "a@example.com, b@example.com", "x <a@example.com>\r\nBcc: b@x.org"):
        with pytest.raises(ConfigurationError, match="COATCHECK_MAIL_FROM"):
            envelope_sender(bad)


def test_build_transport_follows_the_settings(tmp_path: Path) -> None:
    assert isinstance(build_transport(_settings(tmp_path)), MailboxTransport)
    smtp = build_transport(_settings(tmp_path, COATCHECK_MAIL_URL="smtps://u:pw@mx.example.com"))
    assert isinstance(smtp, SmtpTransport)
    assert "pw" not in repr(smtp)
    with pytest.raises(ConfigurationError):
        build_transport(_settings(tmp_path, COATCHECK_MAIL_URL="ftp://mx.example.com"))


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in range(9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert backoff(10_000) == timedelta(hours=1)


# The sender, over a real SMTP server


def _settings(tmp_path: Path, **config: Any) -> Settings:
    return Settings.from_config(
        {
            "COATCHECK_STORE_URL": "memory://",
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            "COATCHECK_PUBLIC_URL": "https://auth.example.com",
            "COATCHECK_MAIL_FROM": FROM,
            **config,
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    built = build_services(
        _settings(tmp_path),
        secret_key=TEST_SECRET_KEY,
        hasher=PasswordHasher.fast_for_tests(),
        clock=clock,
    )
    yield built
    built.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def transport(server: SmtpServer, **query: str) -> SmtpTransport:
    return SmtpTransport(MailURL("smtp", "127.0.0.1", server.port, timeout=5, **query))  # type: ignore[arg-type]


def queue(services: Services, to: str = "alice@example.com", **fields: Any) -> int:
    mail = NewMail(
        kind=fields.pop("kind", "notice"),
        to_addr=to,
        subject=fields.pop("subject", "Your password was changed"),
        text_body=fields.pop("text_body", f"Not you? Reset it: {SECRET_LINK}\n"),
        html_body=fields.pop("html_body", f'<p><a href="{SECRET_LINK}">Reset it</a></p>'),
        **fields,
    )
    return services.users.outbox.add_now(mail)


def status(services: Services, mail_id: int) -> OutboxMail:
    found = services.users.outbox.get(mail_id)
    assert found is not None
    return found


def test_a_mail_arrives_once_with_its_headers_and_both_bodies(
    services: Services, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    mail_id = queue(services)
    stored = status(services, mail_id)
    sender = MailSender(services, transport(smtp))
    with caplog.at_level(logging.DEBUG, logger="coatcheck"):
        assert sender.send_due() == 1
        assert sender.send_due() == 0
    [got] = smtp.received
    assert got.sender == "no-reply@example.com"
    assert got.recipients == ["alice@example.com"]
    assert got.message["From"] == FROM
    assert got.message["To"] == "alice@example.com"
    assert got.message["Subject"] == "Your password was changed"
    assert got.message["Date"]
    assert got.message_id == stored.message_id
    assert SECRET_LINK in got.text()
    assert f'href="{SECRET_LINK}"' in (got.html() or "")
    sent = status(services, mail_id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
    assert sent.sent_at is not None
    # Once with the SMTP server, the text leaves the outbox: no working link stays there.
    assert (sent.text_body, sent.html_body) == (None, None)
    assert sent.subject == "Your password was changed"
    # The log names the mail, never its body (a one-time link).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("coatcheck"))
    assert f"mail {mail_id}" in ours
    assert "one-time-secret" not in ours


def test_a_text_only_mail_has_no_html_part(services: Services, smtp: SmtpServer) -> None:
    queue(services, html_body=None)
    MailSender(services, transport(smtp)).send_due()
    [got] = smtp.received
    assert got.html() is None
    assert not got.message.is_multipart()


def test_starttls_and_login(services: Services, tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    with smtp_server(
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator({"mailer@example.com": "p@ss w"}),
    ) as server:
        url = parse_mail_url(
            f"smtp://mailer%40example.com:p%40ss%20w@127.0.0.1:{server.port}?starttls=true"
        )
        queue(services)
        MailSender(services, SmtpTransport(url, tls_context=client_tls)).send_due()
        [got] = server.received
        assert got.user == "mailer@example.com"


def test_smtps_and_login(services: Services, tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    with smtp_server(
        ssl_context=server_tls,
        auth_require_tls=False,
        authenticator=authenticator({"mailer": "pw"}),
    ) as server:
        url = parse_mail_url(f"smtps://mailer:pw@127.0.0.1:{server.port}")
        queue(services)
        MailSender(services, SmtpTransport(url, tls_context=client_tls)).send_due()
        assert [got.user for got in server.received] == ["mailer"]


def test_a_wrong_password_is_retried(services: Services) -> None:
    with smtp_server(
        auth_require_tls=False, authenticator=authenticator({"mailer": "right"})
    ) as server:
        url = parse_mail_url(f"smtp://mailer:wrong@127.0.0.1:{server.port}")
        mail_id = queue(services)
        MailSender(services, SmtpTransport(url)).send_due()
        assert server.received == []
        found = status(services, mail_id)
        assert found.status == "pending"
        assert "535" in (found.last_error or "")
        assert "wrong" not in (found.last_error or "")


def test_smtp_down_then_back_delivers_after_the_backoff(
    services: Services, clock: ManualClock
) -> None:
    server = SmtpServer()
    mail_id = queue(services)
    sender = MailSender(services, transport(server))
    assert sender.send_due() == 1  # nothing listens on the port yet
    first = status(services, mail_id)
    assert (first.status, first.attempts) == ("pending", 1)
    assert "unreachable" in (first.last_error or "")
    assert first.next_attempt_at - first.created_at == timedelta(seconds=30)
    server.start()
    try:
        clock.advance(29)
        assert sender.send_due() == 0  # not due yet
        clock.advance(2)
        assert sender.send_due() == 1
        assert [r.message_id for r in server.received] == [first.message_id]
        assert status(services, mail_id).status == "sent"
    finally:
        server.stop()


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later", "550 5.1.1 no such user"])
def test_a_refusing_server_is_retried_for_24_hours_then_the_mail_fails(
    services: Services, clock: ManualClock, reply: str
) -> None:
    with smtp_server(Recorder(refuse=reply)) as server:
        mail_id = queue(services)
        created = status(services, mail_id).created_at
        sender = MailSender(services, transport(server))
        waits = []
        while status(services, mail_id).status == "pending":
            mail = status(services, mail_id)
            waits.append((mail.next_attempt_at - created).total_seconds())
            clock.now = mail.next_attempt_at.timestamp()
            assert sender.send_due() == 1
        failed = status(services, mail_id)
        assert failed.status == "failed"
        assert reply.split()[0] in (failed.last_error or "")
        assert "gave up" in (failed.last_error or "")
        assert clock.now - created.timestamp() == GIVE_UP_AFTER.total_seconds()
        # 30 s, 1 min, 2 min... at most an hour apart, the last try at 24 h.
        gaps = [b - a for a, b in zip(waits, waits[1:], strict=False)]
        assert gaps[:4] == [30, 60, 120, 240]
        assert max(gaps) == 3600
        assert failed.attempts == len(waits)
        assert sender.send_due() == 0
        assert server.received == []


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hello\r\nBcc: everyone@example.com"},
        {"to": "alice@example.com\r\nBcc: everyone@example.com"},
        {"to": "not an address"},
        {"to": "alice@"},
    ],
)
def test_a_mail_that_cannot_be_built_fails_at_once(
    services: Services, smtp: SmtpServer, fields: dict[str, str]
) -> None:
    mail_id = queue(services, **fields)
    MailSender(services, transport(smtp)).send_due()
    failed = status(services, mail_id)
    assert failed.status == "failed"
    assert "cannot be built" in (failed.last_error or "")
    assert smtp.received == []


def test_the_development_mailbox_keeps_mails_and_sends_nothing(services: Services) -> None:
    mail_id = queue(services)
    assert MailSender(services, MailboxTransport()).send_due() == 1
    kept = status(services, mail_id)
    assert kept.status == "sent"
    assert SECRET_LINK in (kept.text_body or "")


# Requests, resolved at send time


def resolving_to(services: Services, to: str | None) -> Callable[[OutboxMail], OutboxMail | None]:
    def resolve(mail: OutboxMail) -> OutboxMail | None:
        assert mail.payload == {"login": "alice"}
        if to is None:
            return None
        outbox = services.users.outbox
        with services.users.transaction() as session:
            assert outbox.resolve(
                session,
                mail,
                to_addr=to,
                subject="Reset your password",
                text_body=f"Follow {SECRET_LINK}",
                html_body="",
                user_id=1,
            )
        return outbox.get(mail.id)

    return resolve


def request(services: Services, kind: str = "password_reset") -> int:
    return services.users.outbox.add_now(NewMail(kind, None, payload={"login": "alice"}))


def test_a_request_is_resolved_then_sent(services: Services, smtp: SmtpServer) -> None:
    mail_id = request(services)
    resolvers = {"password_reset": resolving_to(services, "alice@example.com")}
    MailSender(services, transport(smtp), resolvers).send_due()
    [got] = smtp.received
    assert got.recipients == ["alice@example.com"]
    assert got.message["Subject"] == "Reset your password"
    sent = status(services, mail_id)
    assert (sent.status, sent.to_addr, sent.payload) == ("sent", "alice@example.com", None)


def test_a_request_resolved_to_nothing_is_dropped(services: Services, smtp: SmtpServer) -> None:
    mail_id = request(services)
    MailSender(
        services, transport(smtp), {"password_reset": resolving_to(services, None)}
    ).send_due()
    assert status(services, mail_id).status == "dropped"
    assert smtp.received == []


def test_a_request_nobody_resolves_is_dropped(services: Services, smtp: SmtpServer) -> None:
    mail_id = request(services, kind="mystery")
    MailSender(services, transport(smtp), {}).send_due()
    dropped = status(services, mail_id)
    assert dropped.status == "dropped"
    assert "no resolver" in (dropped.last_error or "")


def test_a_resolver_that_breaks_is_retried(
    services: Services, smtp: SmtpServer, clock: ManualClock
) -> None:
    mail_id = request(services)
    calls: list[int] = []

    def flaky(mail: OutboxMail) -> OutboxMail | None:
        calls.append(mail.id)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return resolving_to(services, "alice@example.com")(mail)

    sender = MailSender(services, transport(smtp), {"password_reset": flaky})
    sender.send_due()
    assert status(services, mail_id).status == "pending"
    clock.advance(31)
    sender.send_due()
    assert status(services, mail_id).status == "sent"
    assert len(smtp.received) == 1


def test_a_leased_mail_is_not_taken_by_another_sender(
    services: Services, smtp: SmtpServer, clock: ManualClock
) -> None:
    mail_id = queue(services)
    outbox = services.users.outbox
    [held] = outbox.claim("a sender that died", lease=services.settings.mail_lease)
    sender = MailSender(services, transport(smtp))
    assert sender.send_due() == 0
    clock.advance(services.settings.mail_lease + 1)
    assert sender.send_due() == 1
    assert [r.message_id for r in smtp.received] == [held.message_id]
    assert not outbox.mark_sent(held)  # the dead sender's lease is gone
    assert status(services, mail_id).attempts == 1


def test_send_all_delivers_everything_due(services: Services, smtp: SmtpServer) -> None:
    ids = [queue(services, to=f"user{n}@example.com") for n in range(25)]
    report = MailSender(services, transport(smtp)).send_all()
    assert (report.sent, report.handled) == (25, 25)
    assert sorted(r.recipients[0] for r in smtp.received) == sorted(
        f"user{n}@example.com" for n in range(25)
    )
    assert {status(services, i).status for i in ids} == {"sent"}


def test_a_server_without_auth_is_retried_not_failed(services: Services) -> None:
    with smtp_server() as server:  # offers no AUTH
        url = parse_mail_url(f"smtp://mailer:pw@127.0.0.1:{server.port}")
        mail_id = queue(services)
        MailSender(services, SmtpTransport(url)).send_due()
        found = status(services, mail_id)
        assert found.status == "pending" and "AUTH" in (found.last_error or "")


def test_a_server_that_never_answers_times_out_and_is_retried(services: Services) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        mail_id = queue(services)
        sender = MailSender(
            services, SmtpTransport(MailURL("smtp", "127.0.0.1", port, timeout=0.3))
        )
        sender.send_due()
    found = status(services, mail_id)
    assert found.status == "pending" and "unreachable" in (found.last_error or "")


class BadGoodbye(Recorder):
    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "421 4.3.2 going down"


def test_a_mail_accepted_before_a_bad_goodbye_is_sent(services: Services) -> None:
    with smtp_server(BadGoodbye()) as server:
        mail_id = queue(services)
        MailSender(services, transport(server)).send_due()
        assert len(server.received) == 1
        assert status(services, mail_id).status == "sent"
