"""The command line: enable, roles, the last admin, user create's questions, usernames."""

from __future__ import annotations

from pathlib import Path

import pyotp

from coatcheck import CoatCheck
from coatcheck.service import create_app

from ..ext.auth_app import Browser
from .test_cli import PASSWORD, instance, run

__all__ = ["instance"]  # the fixture, used by name


def _user(instance: Path, name: str):  # type: ignore[no-untyped-def]
    app = create_app({"COATCHECK_INSTANCE": str(instance)})
    try:
        return CoatCheck.state(app).users.get_by_username(name)
    finally:
        CoatCheck.state(app).close()


def test_user_enable_lets_a_disabled_user_log_in_again(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    run("user", "disable", "alice")
    assert "enabled alice; they can log in again" in run("user", "enable", "alice")
    app = create_app({"TESTING": True})
    assert Browser(app).login("alice", PASSWORD).status_code == 200
    run("user", "enable", "nobody", ok=False)


def test_user_roles_sets_the_roles(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert "roles of alice: editor, staff" in run("user", "roles", "alice", "staff", "Editor")
    assert _user(instance, "alice").roles == ("editor", "staff")
    assert "roles of alice: none" in run("user", "roles", "alice")
    assert "roles not changed" in run("user", "roles", "alice", "bad role!", ok=False)


def test_the_last_admin_stays_an_admin(instance: Path) -> None:
    run("user", "create", "root", "--admin", "--password-stdin", input=PASSWORD + "\n")
    out = run("user", "disable", "root", ok=False)
    assert "root is the last active admin and cannot be disabled" in out
    out = run("user", "roles", "root", "staff", ok=False)
    assert "root is the last active admin and cannot lose the admin role" in out
    assert _user(instance, "root").roles == ("admin",)
    run("user", "create", "carol", "--admin", "--password-stdin", input=PASSWORD + "\n")
    assert "roles of root: staff" in run("user", "roles", "root", "staff")


def test_user_create_checks_the_name_before_the_password(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    out = run("user", "create", "ALICE", input="", ok=False)  # no password asked for
    assert "the username 'ALICE' is taken" in out and "Password" not in out


def test_user_create_asks_again_on_a_weak_password(instance: Path) -> None:
    answers = f"bobby bobby bobby\nbobby bobby bobby\n{'a' * 16}\n{'a' * 16}\n"
    out = run("user", "create", "bobby", input=answers + f"{PASSWORD}\n{PASSWORD}\n")
    assert "Do not use your username as your password." in out
    assert "too repetitive" in out
    assert "created user bobby" in out
    weak = run("user", "create", "carol", "--password-stdin", input="a" * 16 + "\n", ok=False)
    assert "too repetitive" in weak


def test_sessions_list_shows_usernames(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    app = create_app({"TESTING": True})
    assert Browser(app).login("alice", PASSWORD).status_code == 200
    for listed in (run("sessions", "list"), run("sessions", "list", "--user", "alice")):
        header, row = listed.splitlines()[:2]
        assert header.split()[:3] == ["HANDLE", "USER", "ID"]
        assert row.split()[1:3] == ["alice", "1"]


def test_user_reset_2fa_removes_the_factors_and_ends_the_sessions(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    app = create_app({"TESTING": True})
    state = CoatCheck.state(app)
    alice = state.users.get_by_username("alice")
    assert alice is not None
    browser = Browser(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    begun = browser.post("/api/2fa/totp", {"name": "Phone"}).json
    code = pyotp.TOTP(begun["secret"]).at(state.clock())  # type: ignore[index]
    confirmed = browser.post(f"/api/2fa/totp/{begun['id']}/confirm", {"code": code})  # type: ignore[index]
    assert confirmed.status_code == 200
    assert "alice" in run("user", "list") and "totp" in run("user", "list")
    second = Browser(app)
    assert second.login("alice", PASSWORD).json["second_factor_required"] is True  # type: ignore[index]
    out = run("user", "reset-2fa", "alice")
    assert out.startswith("removed 1 second factor and the recovery codes of alice")
    assert browser.get("/api/me").status_code == 401  # the sessions ended
    assert "user" in Browser(app).login("alice", PASSWORD).json  # type: ignore[operator]
    [event] = [e for e in state.users.list_events(limit=50) if e.event == "factors_reset"]
    assert event.username == "alice" and event.user_agent == "coatcheck-cli"
    assert "no user named 'nobody'" in run("user", "reset-2fa", "nobody", ok=False)
    state.close()
