"""A real ``coatcheck serve`` whose PostgreSQL is cut off by a TCP proxy.

The user database is needed to log in and to register, not to use a session:
with PostgreSQL unreachable, logins and registrations answer 503 (never 500,
never 401), the sessions already open keep working, ``/readyz`` says 503 and
which check failed; once the network is back, logging in works again and no
account is locked out by the attempts made during the outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ..conftest import TEST_SECRET_KEY
from ..service.served import Reply, Served, serve
from ..users.test_user_store import pg_admin, pg_url  # noqa: F401 - fixtures
from .proxy import TcpProxy
from .traffic import PASSWORD, HttpClient, handle_of, login, register

USER = "alice-pg"


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", 5432)) as opened:
        yield opened


def attempt(served: Served, path: str, body: dict[str, str]) -> Reply:
    """Send ``body`` to ``path`` as a new anonymous client with its CSRF token."""
    client = HttpClient(served.port)
    client.fetch_csrf()
    return client.request("POST", path, body)


def assert_unavailable(reply: Reply) -> None:
    assert reply.status == 503, reply.body
    assert reply.json["error"] == "store_unavailable"


def test_logins_fail_closed_and_sessions_live_on_while_postgresql_is_cut_off(
    tmp_path: Path,
    pg_url: str,  # noqa: F811 - the fixture
    proxy: TcpProxy,
) -> None:
    database = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    env = {"SECRET_KEY": TEST_SECRET_KEY, "COATCHECK_DATABASE_URL": database}
    with serve(tmp_path / "instance", "--workers", "2", **env) as served:
        alice = register(served.port, USER)
        revoked, leaving = login(served.port, USER), login(served.port, USER)
        revoked_handle = handle_of(revoked)
        pair = attempt(served, "/api/token", {"username": USER, "password": PASSWORD})
        assert pair.status == 200, pair.body

        proxy.cut()
        right = {"username": USER, "password": PASSWORD}
        wrong = {"username": USER, "password": "not the password"}
        new = {"username": "bobby-pg", "password": PASSWORD}
        for _ in range(6):  # more than the five failures an account is allowed
            assert_unavailable(attempt(served, "/api/login", right))
            assert_unavailable(attempt(served, "/api/login", wrong))
            assert_unavailable(attempt(served, "/api/register", new))
        assert_unavailable(attempt(served, "/api/token", right))
        for _ in range(4):  # each worker answers for itself
            ready = HttpClient(served.port).request("GET", "/readyz")
            assert ready.status == 503, ready.body
            assert ready.json["checks"] == {"sessions": "ok", "users": "unavailable"}

        # Sessions need no SQL: the open ones keep working, on both workers.
        for _ in range(6):
            me = alice.request("GET", "/api/me")
            assert me.status == 200 and me.json["user"]["username"] == USER
            assert alice.request("GET", "/api/sessions").status == 200
            assert alice.request("GET", "/auth/verify").status == 200
            assert HttpClient(served.port).request("GET", "/sessions/hello").status == 200
        bearer = {"Authorization": f"Bearer {pair.json['access_token']}"}
        assert HttpClient(served.port).request("GET", "/api/me", headers=bearer).status == 200

        # Ending a session writes an audit record: during the outage the answer
        # may be 503, but never 204 for a session that still works.
        revoke = alice.request("DELETE", f"/api/sessions/{revoked_handle}")
        assert revoke.status in (204, 503), revoke.body
        status = revoked.request("GET", "/api/me").status
        assert status == 401 or (status == 200 and revoke.status == 503)
        logout = leaving.request("POST", "/api/logout")
        assert logout.status in (204, 503), logout.body
        status = leaving.request("GET", "/api/me").status
        assert status == 401 or (status == 200 and logout.status == 503)

        proxy.restore()
        for _ in range(4):
            assert HttpClient(served.port).request("GET", "/readyz").status == 200
        again = HttpClient(served.port)
        reply = again.login(USER, PASSWORD)
        assert reply.status == 200, reply.body  # not 429: the outage's attempts don't count
        assert again.request("GET", "/api/me").status == 200
        assert register(served.port, "bobby-pg").request("GET", "/api/me").status == 200
        assert alice.request("GET", "/api/me").status == 200
