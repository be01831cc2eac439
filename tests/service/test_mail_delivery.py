"""Delivery by real ``coatcheck serve`` processes: every mail once, none lost (SPEC §9).

The background senders of the served workers deliver the outbox of one
PostgreSQL database to one aiosmtpd server; a sender killed with SIGKILL in
the middle of a mail leaves it to the other instance when its lease ends.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coatcheck.users import UserStore
from coatcheck.users.outbox import NewMail

from ..smtp_server import Recorder, SmtpServer, smtp_server
from ..users.test_user_store import pg_admin, pg_url  # noqa: F401 - fixtures
from .served import serve

FROM = "coatcheck <no-reply@example.com>"


@pytest.fixture
def database(pg_url: str) -> Iterator[UserStore]:  # noqa: F811 - the fixture
    users = UserStore(pg_url)
    users.create_schema()
    yield users
    users.close()


def mail_env(database: UserStore, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    return {
        "COATCHECK_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "COATCHECK_MAIL_URL": f"smtp://127.0.0.1:{smtp.port}?timeout=30",
        "COATCHECK_MAIL_FROM": FROM,
        "COATCHECK_PUBLIC_URL": "https://auth.example.com",
        "COATCHECK_MAIL_POLL": "0.2",
        **extra,
    }


def queue(database: UserStore, count: int) -> list[str]:
    """Queue ``count`` mails; return their Message-IDs."""
    outbox = database.outbox
    ids = []
    with database.transaction() as session:
        for n in range(count):
            mail = NewMail("notice", f"user{n}@example.com", f"Mail {n}", f"Body {n}\n", None)
            ids.append(outbox.add(session, mail))
    return [found.message_id for i in ids if (found := outbox.get(i)) is not None]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_instances_deliver_each_of_100_mails_once(tmp_path: Path, database: UserStore) -> None:
    with (
        smtp_server() as smtp,
        serve(tmp_path / "a", "--workers", "2", **mail_env(database, smtp)),
        serve(tmp_path / "b", **mail_env(database, smtp)),
    ):
        sent = queue(database, 100)
        wait_until(lambda: len(smtp.received) >= 100, 90, "100 mails")
        time.sleep(1)  # a duplicate would come now
        arrived = Counter(smtp.handler.message_ids())
    assert set(arrived) == set(sent)
    assert [m for m, n in arrived.items() if n > 1] == []
    assert sorted(r.recipients[0] for r in smtp.received) == sorted(
        f"user{n}@example.com" for n in range(100)
    )
    assert database.outbox.counts()["sent"] == 100


def test_a_sender_killed_mid_mail_loses_nothing(tmp_path: Path, database: UserStore) -> None:
    handler = Recorder(stall_first=True)
    with smtp_server(handler) as smtp:
        env = mail_env(database, smtp, COATCHECK_MAIL_LEASE="3")
        with serve(tmp_path / "a", **env) as first:
            sent = queue(database, 10)
            wait_until(handler.stalled.is_set, 30, "the first mail to stall")
            # The first mail's DATA was taken but never answered: its sender cannot know.
            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
        with serve(tmp_path / "b", **env):
            wait_until(lambda: set(handler.message_ids()) >= set(sent), 60, "every mail")
            wait_until(lambda: database.outbox.counts()["sent"] == 10, 30, "every mail sent")
        arrived = Counter(handler.message_ids())
    in_flight = handler.received[0].message_id
    assert set(arrived) == set(sent)  # none lost
    assert {m: n for m, n in arrived.items() if n > 1}.keys() <= {in_flight}
    assert arrived[in_flight] <= 2


def test_a_served_worker_fills_the_development_mailbox_and_stops_promptly(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    with serve(instance, "--workers", "2", COATCHECK_MAIL_POLL="0.2") as served:
        users = UserStore(f"sqlite:///{instance / 'coatcheck.db'}")
        try:
            users.create_schema()
            mail_id = users.outbox.add_now(
                NewMail("notice", "alice@example.com", "Hello", "Your link: https://x/y\n")
            )

            def delivered() -> bool:
                found = users.outbox.get(mail_id)
                return found is not None and found.status == "sent"

            wait_until(delivered, 30, "the mail to be kept as sent")
        finally:
            users.close()
        listed = served.cli("mail", "list")
        assert listed.returncode == 0, listed.stderr
        assert "alice@example.com" in listed.stdout and "sent" in listed.stdout
        shown = served.cli("mail", "show", str(mail_id))
        assert "Your link: https://x/y" in shown.stdout
        started = time.monotonic()
        os.killpg(served.proc.pid, signal.SIGTERM)
        served.proc.wait(timeout=20)
        assert time.monotonic() - started < 15  # the sender thread holds no worker back
