"""Two real ``coatcheck serve`` instances on the real Redis and PostgreSQL share everything."""

from __future__ import annotations

from pathlib import Path

from ..conftest import TEST_SECRET_KEY
from ..users.test_user_store import pg_admin, pg_url  # noqa: F401 - fixtures
from .served import HttpClient, serve

PASSWORD = "correct horse battery"


def test_two_instances_share_sessions_revocations_throttles_and_tokens(
    tmp_path: Path,
    pg_url: str,  # noqa: F811 - the fixture
    redis_url: str,
) -> None:
    env = {
        "COATCHECK_STORE_URL": redis_url,
        "COATCHECK_DATABASE_URL": pg_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "COATCHECK_ROTATION_GRACE": "0",
    }
    with serve(tmp_path / "a", **env) as a, serve(tmp_path / "b", **env) as b:
        created = a.cli("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
        assert created.returncode == 0, created.stderr

        # Log in on A, use the session on B.
        on_a = HttpClient(a.port)
        assert on_a.login("alice", PASSWORD).status == 200
        on_b = HttpClient(b.port, cookies=dict(on_a.cookies))
        me = on_b.request("GET", "/api/me")
        assert me.status == 200 and me.json["user"]["username"] == "alice"
        handle = me.json["session"]["handle"]

        # Revoke it from another device on B: A refuses it at the next request.
        other = HttpClient(b.port)
        assert other.login("alice", PASSWORD).status == 200
        assert other.request("DELETE", f"/api/sessions/{handle}").status == 204
        assert on_a.request("GET", "/api/me").status == 401

        # Failed logins on A and on B add up to the account's limit of five.
        for port, times in ((a.port, 3), (b.port, 2)):
            for _ in range(times):
                assert HttpClient(port).login("alice", "not the password").status == 401
        throttled = HttpClient(a.port).login("alice", PASSWORD)
        assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0

        # A refresh token refreshed on A is spent on B.
        token_client = HttpClient(a.port)
        a.cli("user", "create", "bobby", "--password-stdin", input=PASSWORD + "\n")
        pair = token_client.request(
            "POST", "/api/token", {"username": "bobby", "password": PASSWORD}
        ).json
        body = {"refresh_token": pair["refresh_token"]}
        assert HttpClient(a.port).request("POST", "/api/token/refresh", body).status == 200
        spent = HttpClient(b.port).request("POST", "/api/token/refresh", body)
        assert spent.status == 401 and spent.json["error"] == "invalid_token"
        # Reuse revoked the family everywhere.
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert HttpClient(a.port).request("GET", "/api/me", headers=bearer).status == 401
