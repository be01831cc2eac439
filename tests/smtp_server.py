"""A real SMTP server for the mail tests: aiosmtpd on a free port, recording what it accepts."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .certs import write_certificate
from .conftest import free_port


@dataclass
class Received:
    """One mail the server took: its envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    user: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return None if part is None else str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class Recorder:
    """An aiosmtpd handler: records each mail, or refuses it with ``refuse`` (``"451 ..."``).

    ``stall_first``: the first mail is recorded, then its DATA is never answered
    (until :meth:`release`): a sender killed then cannot know it arrived.
    """

    received: list[Received] = field(default_factory=list)
    refuse: str | None = None
    stall_first: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    stalled: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return self.refuse
        message = message_from_bytes(envelope.content, policy=policy.default)
        user = getattr(session, "auth_data", None)
        with self.lock:
            self.received.append(
                Received(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    message=message,  # type: ignore[arg-type]
                    user=user.login.decode() if isinstance(user, LoginPassword) else None,
                )
            )
            stall = self.stall_first and not self.stalled.is_set()
            if stall:
                self.stalled.set()
        while stall and not self._release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"

    def release(self) -> None:
        self._release.set()

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]


def authenticator(users: dict[str, str]) -> Any:
    """Return an aiosmtpd authenticator accepting these user/password pairs."""

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and users.get(data.login.decode()) == (
            data.password.decode()
        ):
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    return check


class SmtpServer:
    """aiosmtpd on a port of its own that can be stopped and started again on that port."""

    def __init__(self, handler: Recorder | None = None, **smtp: Any) -> None:
        self.handler = handler or Recorder()
        self.port = free_port()
        self.smtp = smtp
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        ssl_context = self.smtp.pop("ssl_context", None)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=ssl_context,
            server_hostname="127.0.0.1",
            ready_timeout=10,
            **self.smtp,
        )
        if ssl_context is not None:
            self.smtp["ssl_context"] = ssl_context
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.handler.release()
            self.controller.stop()
            self.controller = None


@contextmanager
def smtp_server(handler: Recorder | None = None, **smtp: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(handler, **smtp)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def self_signed(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return (server, client) TLS contexts for 127.0.0.1 with a fresh self-signed cert."""
    cert_file, key_file = write_certificate(folder, common_name="127.0.0.1", stem="smtp-")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
