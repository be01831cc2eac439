"""The background mail sender of the service: one daemon thread per worker process.

:func:`start_sender` (called by ``create_app``) starts a thread that looks at
the outbox every ``COATCHECK_MAIL_POLL`` seconds and delivers what is due,
each pass inside the application's context (the resolvers render templates).
An error is logged and the thread waits longer before the next pass (up to
:data:`MAX_IDLE` seconds); it never dies of one. It stops when the process
exits (``atexit``): a pass in flight gets :data:`STOP_GRACE` seconds, then the
process goes on exiting and the mail's lease hands it to another sender.

By default only the worker processes of ``coatcheck serve`` run one (see
:func:`wants_sender`). A server that builds the app and then forks (gunicorn
``--preload``) keeps the master's: before any fork the thread is paused
between batches, so that no lock it holds is copied into a child half-taken.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from ..auth.mail import MailSender, Resolver, build_transport
from ..core.errors import StoreUnavailable
from ..ext import CoatCheck
from .config import read_toml

log = logging.getLogger("coatcheck.mail")

#: The longest wait between passes after errors, in seconds.
MAX_IDLE = 60.0
#: Seconds the exit waits for a pass in flight.
STOP_GRACE = 5.0
#: The config key that turns the thread on (the service's default: on, but not under TESTING).
SENDER_KEY = "COATCHECK_MAIL_SENDER"
#: The name of granian's worker processes (``multiprocessing``).
GRANIAN_WORKER = "granian-worker"

_running: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()


def resolvers(app: Flask) -> Mapping[str, Resolver]:
    """Return the resolvers of the mail requests (reset by login, security notices)."""
    try:
        from ..ext.mail import resolvers as found  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # written separately; until then requests are dropped
        log.warning("coatcheck.ext.mail is missing: mail requests are dropped")
        return {}
    with app.app_context():
        return dict(found(app))


def build_sender(app: Flask) -> MailSender:
    """Return a :class:`MailSender` over the app's services, transport and resolvers."""
    services = CoatCheck.state(app)
    return MailSender(services, build_transport(services.settings), resolvers(app))


class BackgroundSender:
    """A daemon thread delivering the outbox of ``app`` until :meth:`stop`."""

    def __init__(self, app: Flask, sender: MailSender, *, poll: float) -> None:
        self.app = app
        self.sender = sender
        self.poll = poll
        self.stopping = threading.Event()
        #: Held during a pass; taken before a fork so that none is in flight then.
        self.busy = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="coatcheck-mail", daemon=True)
        self.pid = os.getpid()

    def start(self) -> None:
        """Start the thread."""
        _running.add(self)
        self.thread.start()

    def stop(self, timeout: float = STOP_GRACE) -> None:
        """Ask the thread to stop and wait for it (at most ``timeout`` seconds)."""
        self.stopping.set()
        if self.pid == os.getpid() and self.thread.is_alive():
            self.thread.join(timeout)

    def run_pass(self) -> int:
        """Deliver what is due now (several batches); return how many mails were taken."""
        taken = 0
        with self.app.app_context():
            while not self.stopping.is_set():
                with self.busy:  # one batch at a time: a fork waits for one batch at most
                    count = self.sender.send_due()
                taken += count
                if count == 0:
                    break
        return taken

    def _run(self) -> None:
        idle = self.poll
        while not self.stopping.is_set():
            try:
                self.run_pass()
            except StoreUnavailable as exc:  # expected while the database is down: no traceback
                idle = min(max(idle * 2, self.poll), MAX_IDLE)
                log.warning("mail sender: %s; next look in %.0f s", exc, idle)
            except Exception:
                idle = min(max(idle * 2, self.poll), MAX_IDLE)
                log.exception("mail sender: the pass failed; next look in %.0f s", idle)
            else:
                idle = self.poll
            self.stopping.wait(idle)


def wants_sender(app: Flask, given: Mapping[str, Any] | None) -> bool:
    """Tell whether ``app`` runs a background sender in this process.

    ``COATCHECK_MAIL_SENDER`` given explicitly (the config passed to
    ``create_app``, the environment or the TOML file) decides. Left to its
    default (on), only the processes of ``coatcheck serve`` that answer
    requests run one: granian's workers and the development server's child,
    and not under ``TESTING``. So ``serve``'s own process (it builds the app
    once to check the configuration, then forks the workers), one-off commands
    and scripts or tests that call ``create_app`` start no thread. Another WSGI
    server sets ``COATCHECK_MAIL_SENDER=true`` (or runs ``coatcheck mail
    send-pending`` from cron).
    """
    if not app.config.get(SENDER_KEY):
        return False
    if _given_explicitly(given):
        return True
    if app.config.get("TESTING"):
        return False
    return (
        multiprocessing.current_process().name == GRANIAN_WORKER
        or os.environ.get("WERKZEUG_RUN_MAIN") == "true"
    )


def _given_explicitly(given: Mapping[str, Any] | None) -> bool:
    given = given or {}
    if SENDER_KEY in given or SENDER_KEY in os.environ:
        return True
    config_file = given.get("COATCHECK_CONFIG") or os.environ.get("COATCHECK_CONFIG")
    return bool(config_file) and SENDER_KEY in read_toml(Path(str(config_file)))


def install(app: Flask, given: Mapping[str, Any] | None) -> None:
    """Check the mail settings now (a bad URL fails the start), and start the sender if wanted."""
    build_transport(CoatCheck.state(app).settings)
    if wants_sender(app, given):
        start_sender(app)


def start_sender(app: Flask) -> BackgroundSender:
    """Start the background sender of ``app`` and stop it at exit; return it."""
    sender = build_sender(app)
    background = BackgroundSender(app, sender, poll=sender.services.settings.mail_poll)
    app.extensions["coatcheck_mail_sender"] = background
    background.start()
    atexit.register(background.stop)
    return background


def _before_fork() -> None:
    for background in list(_running):
        background.busy.acquire()


def _after_fork_in_parent() -> None:
    for background in list(_running):
        if background.busy.locked():
            background.busy.release()


def _after_fork_in_child() -> None:
    # The thread is not copied into the child; neither is anything it might do.
    _running.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
