"""SIGKILL a worker of `coatcheck serve` while many clients write sessions to the SQLite store.

A worker killed mid-request loses that request, nothing else: afterwards the
database passes ``PRAGMA integrity_check``, every write a client saw
acknowledged (a 2xx received) is in the store, and every acknowledged logout
has removed its session.
"""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from coatcheck.core.ids import store_key
from coatcheck.stores.base import open_store

from ..conftest import TEST_SECRET_KEY
from ..service.served import Served, serve, wait_for_workers, workers
from .traffic import PASSWORD, HttpClient, register

COOKIE = "__Host-session"
USERS = [f"writer-{n}" for n in range(4)]


@dataclass
class Ledger:
    """What the clients saw acknowledged, and what never got an answer."""

    written: set[str] = field(default_factory=set)  # session IDs with hello=World stored
    logged_in: set[str] = field(default_factory=set)
    logged_out: set[str] = field(default_factory=set)
    # Logouts sent, answered or not: one cut off by a kill may have ended its
    # session before the answer was lost (the outcome is unknown, not a loss).
    logout_sent: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)
    interrupted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int) -> None:
        with self.lock:
            self.statuses.append(status)

    def lost(self) -> None:
        with self.lock:
            self.interrupted += 1

    def enough(self) -> bool:
        """Tell whether enough was acknowledged for the checks to mean something."""
        with self.lock:
            return len(self.written) > 50 and len(self.logged_out) > 5


def visitor(served: Served, ledger: Ledger, stop: threading.Event) -> None:
    """A new device per round: log in (an insert), then write to the session (an update).

    Anonymous visitors store nothing, the lessons included, so a new record
    needs a login.
    """
    while not stop.is_set():
        client = HttpClient(served.port)
        try:
            reply = client.login(USERS[0], PASSWORD)
            ledger.answer(reply.status)
            if reply.status != 200:
                continue
            reply = client.request("GET", "/sessions/hello")
        except (OSError, http.client.HTTPException, KeyError):  # KeyError: no CSRF token
            ledger.lost()
            continue
        ledger.answer(reply.status)
        if reply.status == 200:
            with ledger.lock:
                ledger.written.add(client.cookies[COOKIE])


def member(served: Served, username: str, ledger: Ledger, stop: threading.Event) -> None:
    """Log in, write to the session, log out, again and again."""
    while not stop.is_set():
        client = HttpClient(served.port)
        try:
            reply = client.login(username, PASSWORD)
            ledger.answer(reply.status)
            if reply.status != 200:
                continue
            sid = client.cookies[COOKIE]
            with ledger.lock:
                ledger.logged_in.add(sid)
            reply = client.request("GET", "/sessions/hello")  # a partial save
            ledger.answer(reply.status)
            if reply.status == 200:
                with ledger.lock:
                    ledger.written.add(sid)
            with ledger.lock:
                ledger.logout_sent.add(sid)
            reply = client.request("POST", "/api/logout")
            ledger.answer(reply.status)
            if reply.status == 204:
                with ledger.lock:
                    ledger.logged_out.add(sid)
        except (OSError, http.client.HTTPException, KeyError):  # KeyError: no CSRF token
            ledger.lost()


def test_killed_workers_lose_no_acknowledged_write(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    with serve(instance, "--workers", "2", SECRET_KEY=TEST_SECRET_KEY) as served:
        for name in USERS:
            register(served.port, name)
        master = served.proc.pid
        original = wait_for_workers(master, 2)
        ledger, stop = Ledger(), threading.Event()
        threads = [
            threading.Thread(target=visitor, args=(served, ledger, stop)) for _ in range(8)
        ] + [threading.Thread(target=member, args=(served, u, ledger, stop)) for u in USERS]
        for thread in threads:
            thread.start()
        try:
            killed = []
            for pid in sorted(original):  # each original worker, one after the other
                time.sleep(1.0)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                wait_for_workers(master, 2)
            # Then traffic on the new workers: a second at least (a worker still starting
            # when the server is told to stop misses the signal and holds the shutdown up
            # for granian's kill timeout), and enough to judge by, however slow the machine.
            time.sleep(1.0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not ledger.enough():
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert workers(master).isdisjoint(killed)

        database = instance / "sessions.db"
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.close()
        store = open_store(f"sqlite:///{database}")
        try:
            for sid in ledger.written - ledger.logout_sent:
                record = store.get(store_key(sid))
                assert record is not None and "hello" in record.data
            for sid in ledger.logged_in - ledger.logout_sent:
                assert store.get(store_key(sid)) is not None
            for sid in ledger.logged_out:
                assert store.get(store_key(sid)) is None
        finally:
            store.close()

    assert all(status < 500 for status in ledger.statuses), sorted(set(ledger.statuses))
    assert ledger.enough()
    print(
        f"acknowledged: {len(ledger.written)} writes, {len(ledger.logged_in)} logins, "
        f"{len(ledger.logged_out)} logouts; interrupted: {ledger.interrupted}"
    )
