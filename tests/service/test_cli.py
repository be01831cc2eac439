"""The ``coatcheck`` command line against a real instance folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coatcheck.service import create_app
from coatcheck.service.cli import main

from ..conftest import TEST_SECRET_KEY
from ..ext.auth_app import Browser

PASSWORD = "correct horse battery"


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("COATCHECK_STORE_URL", "COATCHECK_DATABASE_URL", "COATCHECK_CONFIG", "SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COATCHECK_INSTANCE", str(tmp_path / "instance"))
    return tmp_path / "instance"


def run(*args: str, input: str | None = None, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result.output


def test_user_create_from_stdin_and_list(instance: Path) -> None:
    out = run("user", "create", "admin", "--admin", "--password-stdin", input=PASSWORD + "\n")
    assert "created user admin (id 1) with role admin" in out
    assert PASSWORD not in out
    listed = run("user", "list")
    assert "admin" in listed and "active" in listed
    secret = instance / "secret_key"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_user_create_prompts_twice(instance: Path) -> None:
    out = run("user", "create", "alice", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert "created user alice" in out
    mismatch = run("user", "create", "bobby", input=f"{PASSWORD}\nsomething else\n", ok=False)
    assert "do not match" in mismatch.lower() or "error" in mismatch.lower()


def test_user_create_refusals(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert "taken" in run(
        "user", "create", "ALICE", "--password-stdin", input=PASSWORD + "\n", ok=False
    )
    weak = run("user", "create", "bobby", "--password-stdin", input="short\n", ok=False)
    assert "12" in weak


def test_the_cli_and_the_app_share_an_instance(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    app = create_app({"TESTING": True})
    assert app.config["SECRET_KEY"] == (instance / "secret_key").read_text().strip()
    browser = Browser(app)
    assert browser.login("alice", PASSWORD).status_code == 200
    handle = browser.get("/api/me").json["session"]["handle"]  # type: ignore[index]

    listed = run("sessions", "list", "--user", "alice")
    assert handle in listed
    assert handle in run("sessions", "list")
    assert f"revoked {handle}" in run("sessions", "revoke", handle)
    assert browser.get("/api/me").status_code == 401
    assert "no live session" in run("sessions", "revoke", handle, ok=False)


def test_sessions_revoke_by_user_and_disable(instance: Path) -> None:
    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    app = create_app({"TESTING": True})
    browser = Browser(app)
    browser.login("alice", PASSWORD)
    assert "revoked 1 session(s) of alice" in run("sessions", "revoke", "--user", "alice")
    assert browser.get("/api/me").status_code == 401
    browser.login("alice", PASSWORD)
    assert "disabled alice" in run("user", "disable", "alice")
    assert browser.get("/api/me").status_code == 401
    assert Browser(app).login("alice", PASSWORD).status_code == 401
    assert "disabled" in run("user", "list")
    run("sessions", "revoke", ok=False)
    run("user", "disable", "nobody", ok=False)


def test_sessions_purge(instance: Path) -> None:
    assert "purged 0 expired record(s)" in run("sessions", "purge")


def test_check_flags_insecure_settings(instance: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run("check")
    assert "OK" in out and "__Host-session" in out
    monkeypatch.setenv("COATCHECK_COOKIE_SECURE", "false")
    monkeypatch.setenv("SECRET_KEY", "short-but-legal-16")
    out = run("check", ok=False)
    assert (
        "PROBLEM" in out
        and "COATCHECK_COOKIE_SECURE is off" in out
        and "SECRET_KEY is short" in out
    )


def test_config_file(instance: Path, tmp_path: Path) -> None:
    config = tmp_path / "coatcheck.toml"
    config.write_text(f'SECRET_KEY = "{TEST_SECRET_KEY}"\nCOATCHECK_COOKIE_SAMESITE = "Strict"\n')
    out = run("check", "--config", str(config))
    assert "SameSite=Strict" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    assert "not valid TOML" in run("check", "--config", str(bad), ok=False)


def test_bad_configuration_is_a_clear_error(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATCHECK_COOKIE_SAMESITE", "sideways")
    out = run("user", "list", ok=False)
    assert "COATCHECK_COOKIE_SAMESITE must be one of" in out
    assert "Traceback" not in out


def test_the_cli_creates_no_request_context(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line calls auth/ directly: a fake request would be a smell.
    from flask import Flask

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CLI made a request context")

    monkeypatch.setattr(Flask, "test_request_context", refuse)
    monkeypatch.setattr(Flask, "request_context", refuse)
    run("user", "create", "alice", "--admin", "--password-stdin", input=PASSWORD + "\n")
    run("user", "list")
    run("sessions", "list")
    run("sessions", "revoke", "--user", "alice")
    run("sessions", "purge")
    run("user", "create", "bob", "--password-stdin", input=PASSWORD + "\n")
    run("user", "roles", "bob", "staff")
    run("user", "disable", "bob")
    run("user", "enable", "bob")
    run("check")


def test_the_cli_is_named_in_the_audit_log(instance: Path) -> None:
    from coatcheck import CoatCheck

    run("user", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
    run("user", "disable", "alice")
    app = create_app({"COATCHECK_INSTANCE": str(instance)})
    events = CoatCheck.state(app).users.list_events(limit=5)
    assert {e.user_agent for e in events} == {"coatcheck-cli"}
    assert {e.ip for e in events} == {"127.0.0.1"}
