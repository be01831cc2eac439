"""End to end over real HTTP: an API client does the SPEC table with tokens alone."""

from __future__ import annotations

from pathlib import Path

from .served import HttpClient, serve

PASSWORD = "correct horse battery"


def test_an_api_client_needs_nothing_but_tokens(tmp_path: Path) -> None:
    with serve(tmp_path / "instance") as served:
        for name, admin in (("root", True), ("alice", False)):
            args = ["user", "create", name, "--password-stdin", *(["--admin"] if admin else [])]
            assert served.cli(*args, input=PASSWORD + "\n").returncode == 0
        http = HttpClient(served.port)  # never sends a cookie: none is ever set

        def call(method: str, path: str, token: str | None = None, body: object = None):  # type: ignore[no-untyped-def]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            reply = http.request(method, path, body, headers)
            assert not http.cookies, reply.headers
            return reply

        root = call("POST", "/api/token", body={"username": "root", "password": PASSWORD}).json
        alice = call("POST", "/api/token", body={"username": "alice", "password": PASSWORD}).json
        alice2 = call("POST", "/api/token", body={"username": "alice", "password": PASSWORD}).json
        a = alice["access_token"]

        me = call("GET", "/api/me", a)
        assert me.status == 200 and me.json["user"]["username"] == "alice"
        sessions = call("GET", "/api/sessions", a).json["sessions"]
        assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
        [other] = [s for s in sessions if not s["current"]]
        assert call("DELETE", f"/api/sessions/{other['handle']}", a).status == 204
        assert call("GET", "/api/me", alice2["access_token"]).status == 401
        assert call("DELETE", "/api/sessions", a).status == 204

        new = "a brand new passphrase"
        body = {"current_password": PASSWORD, "new_password": new}
        assert call("POST", "/api/password", a, body).status == 204
        refreshed = call(
            "POST", "/api/token/refresh", body={"refresh_token": alice["refresh_token"]}
        )
        assert refreshed.status == 200
        a = refreshed.json["access_token"]
        assert call("GET", "/api/me", a).status == 200

        verify = call("GET", "/auth/verify", a)
        assert verify.status == 200 and verify.headers["X-Auth-User"] == "alice"

        r = root["access_token"]
        users = call("GET", "/api/admin/users", r).json["users"]
        alice_id = next(u["id"] for u in users if u["username"] == "alice")
        assert call("GET", "/api/admin/users", a).status == 403
        roles = call("POST", f"/api/admin/users/{alice_id}/roles", r, {"roles": ["editor"]})
        assert roles.status == 200 and roles.json["user"]["roles"] == ["editor"]
        assert call("GET", "/api/me", a).json["user"]["roles"] == ["editor"]
        audit = call("GET", "/api/admin/audit?limit=5", r).json
        assert audit["total"] > 5 and len(audit["events"]) == 5
        assert call("DELETE", f"/api/admin/users/{alice_id}/sessions", r).status == 204
        assert call("GET", "/api/me", a).status == 401

        assert call("POST", "/api/token/revoke", body={"token": r}).status == 204
        assert call("GET", "/api/me", r).status == 401
        root2 = call("POST", "/api/token", body={"username": "root", "password": PASSWORD}).json
        assert call("POST", "/api/logout", root2["access_token"]).status == 204
        assert call("GET", "/api/me", root2["access_token"]).status == 401
        assert (
            call(
                "POST", "/api/token/refresh", body={"refresh_token": root2["refresh_token"]}
            ).status
            == 401
        )
