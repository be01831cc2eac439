"""PostgreSQL connections that give up when the server stops answering.

A server that refuses or drops connections fails at once; one that stops
answering (frozen, or cut off behind a link that holds the connection open)
would make a request wait as long as the operating system keeps the socket.
Here every wait on the server is bounded by ``timeout`` seconds on the
client: connecting (psycopg enforces libpq's two-second minimum on
``connect_timeout``, too long for a request), each statement (PostgreSQL's
own ``statement_timeout`` is set to the same, and cleans up on the server
side), and the check that a pooled connection is alive before use. A
connection that timed out is closed, never reused, and its failure is not
retried: the request answers 503 at once and the next one tries again, so
that everything works again as soon as the server answers.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import psycopg
from psycopg import errors
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

# psycopg's own signal that a wait ran past its timeout (an OperationalError).
_WAIT_TIMEOUT: type[Exception] = getattr(errors, "_WaitTimeout", psycopg.OperationalError)


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits ``answer_timeout`` seconds at most for the server."""

    #: Seconds to wait for an answer (``None``: no limit, e.g. while migrating).
    answer_timeout: float | None = None
    #: Seconds to wait for a new connection (``None``: psycopg's ``connect_timeout``).
    connect_timeout: float | None = None
    #: Set once a wait timed out: the connection was closed then.
    timed_out = False

    @classmethod
    def _connect_gen(cls, conninfo: str = "") -> Any:
        gen = super()._connect_gen(conninfo)
        return gen if cls.connect_timeout is None else _within(gen, cls.connect_timeout)

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None or self.answer_timeout is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.answer_timeout)
        except _WAIT_TIMEOUT:
            # The statement is still in flight: the connection cannot be used again.
            self.timed_out = True
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database gave no answer within {self.answer_timeout:g} s"
            ) from None


def _within(gen: Generator[Any, Any, Any], seconds: float) -> Generator[Any, Any, Any]:
    """Drive the connecting generator ``gen``, giving up after ``seconds``."""
    deadline = time.monotonic() + seconds
    try:
        waiting_for = next(gen)
        while True:
            ready = yield waiting_for
            if time.monotonic() >= deadline:
                gen.close()
                message = f"no connection to the database within {seconds:g} s"
                raise errors.ConnectionTimeout(message)
            waiting_for = gen.send(ready)
    except StopIteration as stop:
        return stop.value


def bound_engine(engine: Engine, timeout: float, *, connect: bool) -> None:
    """Make ``engine`` open :class:`BoundedConnection` s and check them before use.

    :param connect: bound connecting too (the URL gave no ``connect_timeout``).
    """
    bounded: type[BoundedConnection] = type(
        "BoundedConnection",
        (BoundedConnection,),
        {"answer_timeout": timeout, "connect_timeout": timeout if connect else None},
    )
    dialect = engine.dialect

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        return bounded.connect(*cargs, **cparams)

    @event.listens_for(engine, "checkout")
    def _check_alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # The pool's own pre-ping would reconnect after a timeout too: twice the wait.
        try:
            dialect.do_ping(dbapi_connection)
        except psycopg.Error as exc:
            if getattr(dbapi_connection, "timed_out", False):
                raise  # no answer: fail this request now, the next one connects anew
            raise DisconnectionError(str(exc)) from exc  # dropped: reconnect once


def unbounded(dbapi_connection: Any) -> None:
    """Let ``dbapi_connection`` wait as long as it needs (migrations queue on a lock)."""
    dbapi_connection.answer_timeout = None


def rebound(dbapi_connection: Any) -> None:
    """Undo :func:`unbounded`: the engine's timeout applies again."""
    dbapi_connection.__dict__.pop("answer_timeout", None)
