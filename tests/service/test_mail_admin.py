"""The outbox for admins: ``/api/admin/mail``, ``/admin/mail``, ``coatcheck mail``, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.auth.mail import MailboxTransport, MailSender
from coatcheck.service import create_app
from coatcheck.service.mailer import wants_sender
from coatcheck.users.outbox import NewMail

from .test_api import error_of, logged_in
from .test_cli import instance, run
from .test_metrics import TOKEN, samples, scrape

__all__ = ["instance"]  # the fixture, used by name

LINK = "https://auth.example.com/reset/one-time-secret-42"
EVIL_HTML = '<p>Hi</p><script>alert("x")</script><img src=x onerror="alert(1)">'


def queue(app: Flask, to: str | None = "alice@example.com", **fields: object) -> int:
    outbox = CoatCheck.state(app).users.outbox
    if to is None:  # a request: what it needs, no address, subject or body yet
        kind = str(fields.get("kind", "password_reset"))
        return outbox.add_now(NewMail(kind, None, payload={"login": "alice"}))
    return outbox.add_now(
        NewMail(
            kind=str(fields.pop("kind", "password_reset")),
            to_addr=to,
            subject=str(fields.pop("subject", "Reset your password")),
            text_body=str(fields.pop("text_body", f"Follow <{LINK}>\n")),
            html_body=str(fields.pop("html_body", EVIL_HTML)),
        )
    )


def fail(app: Flask, mail_id: int, error: str) -> None:
    """Fail ``mail_id``: it must be the only mail due (claim takes every due mail)."""
    outbox = CoatCheck.state(app).users.outbox
    [leased] = outbox.claim("test", lease=60, limit=100)
    assert leased.id == mail_id
    assert outbox.mark_failed(leased, error)


def test_the_api_lists_mails_without_bodies_and_counts_them(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    first = queue(service)
    fail(service, first, "550 no such user")
    second = queue(service, to="bob@example.com", subject="Welcome")
    listed = admin.get("/api/admin/mail")
    assert listed.status_code == 200
    body = listed.json
    assert body is not None
    assert (body["total"], body["offset"], body["limit"]) == (2, 0, 50)
    assert body["counts"] == {"pending": 1, "sending": 0, "sent": 0, "failed": 1, "dropped": 0}
    newest, oldest = body["mails"]
    assert set(newest) == {
        "id",
        "status",
        "kind",
        "to",
        "subject",
        "created_at",
        "sent_at",
        "attempts",
        "last_error",
    }
    assert (newest["id"], newest["to"], newest["status"]) == (second, "bob@example.com", "pending")
    assert (oldest["status"], oldest["last_error"], oldest["attempts"]) == (
        "failed",
        "550 no such user",
        1,
    )
    assert oldest["created_at"].endswith("Z") and oldest["sent_at"] is None
    assert LINK not in listed.get_data(as_text=True)
    failed = admin.get("/api/admin/mail?status=failed").json
    assert failed is not None
    assert [m["id"] for m in failed["mails"]] == [first] and failed["total"] == 1
    paged = admin.get("/api/admin/mail?offset=1&limit=1").json
    assert paged is not None
    assert [m["id"] for m in paged["mails"]] == [first]


def test_the_api_shows_one_mail_with_its_bodies(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    mail_id = queue(service)
    shown = admin.get(f"/api/admin/mail/{mail_id}")
    assert shown.status_code == 200
    assert shown.headers["Cache-Control"] == "no-store"
    body = shown.json
    assert body is not None
    assert body["text_body"] == f"Follow <{LINK}>\n" and body["html_body"] == EVIL_HTML
    assert body["message_id"].startswith("<") and body["to"] == "alice@example.com"
    assert error_of(admin.get("/api/admin/mail/999")) == "not_found"


@pytest.mark.parametrize(
    "query", ["status=bogus", "offset=-1", "limit=0", "limit=201", "offset=x", "limit=1.5"]
)
def test_the_api_refuses_bad_parameters(service: Flask, query: str) -> None:
    admin = logged_in(service, "root", "admin")
    reply = admin.get(f"/api/admin/mail?{query}")
    assert reply.status_code == 400 and error_of(reply) == "invalid"


def test_only_admins_read_the_outbox(service: Flask) -> None:
    mail_id = queue(service)
    user = logged_in(service, "alice")
    for path in ("/api/admin/mail", f"/api/admin/mail/{mail_id}"):
        assert user.get(path).status_code == 403
    for path in ("/admin/mail", f"/admin/mail/{mail_id}"):
        assert user.get(path, headers={"Accept": "text/html"}).status_code == 403
    anonymous = logged_in(service, "bob")
    anonymous.client.delete_cookie("session", domain="localhost")
    assert error_of(Flask.test_client(service).get("/api/admin/mail")) == "unauthenticated"


def test_the_pages_list_and_show_mails_and_run_no_script(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    failed_id = queue(service, to="carol@example.com", subject="Gone")
    fail(service, failed_id, "550 mailbox unavailable")
    mail_id = queue(service)
    request_id = queue(service, to=None)
    index = admin.get("/admin")
    assert 'href="/admin/mail"' in index.get_data(as_text=True)
    page = admin.get("/admin/mail")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "development mailbox" in text
    assert "failed: 1" in text and "pending: 2" in text
    assert "550 mailbox unavailable" in text and "carol@example.com" in text
    assert f'href="/admin/mail/{mail_id}"' in text and "(not resolved yet)" in text
    assert LINK not in text
    failed_only = admin.get("/admin/mail?status=failed").get_data(as_text=True)
    assert "carol@example.com" in failed_only and "alice@example.com" not in failed_only

    shown = admin.get(f"/admin/mail/{mail_id}")
    assert shown.status_code == 200
    assert "script-src 'none'" in shown.headers["Content-Security-Policy"]
    html = shown.get_data(as_text=True)
    assert f"<pre>Follow &lt;{LINK}&gt;\n</pre>" in html
    assert "<script>" not in html and "onerror=" not in html.replace("onerror=&#34;", "")
    assert '<iframe sandbox title="' in html and 'srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script' in html
    assert "None yet" in admin.get(f"/admin/mail/{request_id}").get_data(as_text=True)
    assert admin.get("/admin/mail/999").status_code == 404


def test_the_outbox_gauge_counts_mails_by_status(make_service: Callable[..., Flask]) -> None:
    app = make_service(COATCHECK_METRICS=True, COATCHECK_METRICS_TOKEN=TOKEN)
    client = app.test_client()
    before = samples(scrape(client), "coatcheck_mail_outbox")
    assert before == {
        (("status", s),): 0 for s in ("pending", "sending", "sent", "failed", "dropped")
    }
    failed = queue(app)
    fail(app, failed, "550")
    queue(app)
    after = samples(scrape(client), "coatcheck_mail_outbox")
    assert after[(("status", "pending"),)] == 1 and after[(("status", "failed"),)] == 1


def test_no_background_sender_under_testing_unless_asked(
    make_service: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_service()
    assert "coatcheck_mail_sender" not in app.extensions
    assert not wants_sender(app, {})
    assert wants_sender(app, {"COATCHECK_MAIL_SENDER": True})
    assert not wants_sender(make_service(COATCHECK_MAIL_SENDER=False), {})
    # Outside a server's worker (a script, a command, a test) only when asked.
    plain = create_app({"COATCHECK_INSTANCE": str(tmp_path / "plain")})
    try:
        assert "coatcheck_mail_sender" not in plain.extensions
    finally:
        CoatCheck.state(plain).close()


def test_the_background_sender_delivers_and_stops(make_service: Callable[..., Flask]) -> None:
    app = make_service(COATCHECK_MAIL_SENDER=True, COATCHECK_MAIL_POLL=0.05)
    background = app.extensions["coatcheck_mail_sender"]
    try:
        assert background.thread.is_alive()
        mail_id = queue(app)
        outbox = CoatCheck.state(app).users.outbox
        deadline = time.monotonic() + 10
        while (found := outbox.get(mail_id)) is not None and found.status != "sent":
            assert time.monotonic() < deadline, found
            time.sleep(0.02)
    finally:
        background.stop()
    assert not background.thread.is_alive()


def test_the_background_sender_survives_a_failing_pass(
    make_service: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_service(COATCHECK_MAIL_SENDER=True, COATCHECK_MAIL_POLL=0.05)
    background = app.extensions["coatcheck_mail_sender"]
    real = background.sender.send_due
    calls: list[int] = []

    def broken(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real()

    background.sender.send_due = broken
    try:
        mail_id = queue(app)
        outbox = CoatCheck.state(app).users.outbox
        deadline = time.monotonic() + 10
        while (found := outbox.get(mail_id)) is not None and found.status != "sent":
            assert time.monotonic() < deadline, found
            time.sleep(0.02)
    finally:
        background.stop()
    assert "the pass failed" in caplog.text


def test_a_bad_mail_url_fails_the_start(make_service: Callable[..., Flask]) -> None:
    from coatcheck.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="smtp:// or smtps://"):
        make_service(
            COATCHECK_MAIL_URL="http://mail.example.com",
            COATCHECK_PUBLIC_URL="https://auth.example.com",
        )


# The command line: the development mailbox


def _app(instance: Path) -> Flask:
    return create_app({"COATCHECK_INSTANCE": str(instance)})


def test_mail_list_show_and_send_pending(instance: Path) -> None:
    assert "(none)" in run("mail", "list")
    app = _app(instance)
    assert "coatcheck_mail_sender" not in app.extensions  # a command: no background sender
    try:
        failed_id = queue(app, to="carol@example.com", subject="Gone")
        fail(app, failed_id, "550 mailbox unavailable")
        mail_id = queue(app)
        queue(app, to=None, kind="mystery")
    finally:
        CoatCheck.state(app).close()
    listed = run("mail", "list")
    assert "alice@example.com" in listed and "Reset your password" in listed
    assert "550 mailbox unavailable" in listed and "LAST ERROR" in listed
    assert LINK not in listed
    only_failed = run("mail", "list", "--status", "failed")
    assert "carol@example.com" in only_failed and "alice@example.com" not in only_failed

    shown = run("mail", "show", str(mail_id))
    assert "To: alice@example.com" in shown and "Subject: Reset your password" in shown
    assert "Message-ID: <" in shown and LINK in shown and "<script>" not in shown
    assert "no mail with ID 999" in run("mail", "show", "999", ok=False)

    out = run("mail", "send-pending")
    assert "sent 1, retrying 0, failed 0, dropped 1" in out
    assert "sent 0" in run("mail", "send-pending")
    app = _app(instance)
    try:
        assert CoatCheck.state(app).users.outbox.counts() == {
            "pending": 0,
            "sending": 0,
            "sent": 1,
            "failed": 1,
            "dropped": 1,
        }
    finally:
        CoatCheck.state(app).close()


def test_the_development_mailbox_sender_marks_mails_sent(service: Flask) -> None:
    mail_id = queue(service)
    sender = MailSender(CoatCheck.state(service), MailboxTransport())
    assert sender.send_due() == 1
    kept = CoatCheck.state(service).users.outbox.get(mail_id)
    assert kept is not None and kept.status == "sent" and LINK in (kept.text_body or "")


def test_an_unreachable_database_is_a_warning_without_a_traceback(
    make_service: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    from coatcheck.core.errors import StoreUnavailable

    app = make_service(COATCHECK_MAIL_SENDER=True, COATCHECK_MAIL_POLL=0.05)
    background = app.extensions["coatcheck_mail_sender"]
    real = background.sender.send_due
    calls: list[int] = []

    def frozen(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("the user database cannot be reached: frozen")
        return real()

    background.sender.send_due = frozen
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        background.stop()
    [record] = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
