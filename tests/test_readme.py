"""The README stays true: its example runs, its configuration table is complete."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from coatcheck.core.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for field in dataclasses.fields(Settings):
        assert f"`{field.metadata['key']}`" in README, field.metadata["key"]


def test_the_two_setup_commands_are_there() -> None:
    assert "make run" in README and "make test" in README


def test_the_ten_line_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [example] = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(example.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    code = example.replace('"…32+ random characters…"', '"x" * 32')
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    app = namespace["app"]
    client = app.test_client()  # type: ignore[attr-defined]
    assert client.get("/me", base_url="https://localhost").status_code == 401
    assert client.post("/login", base_url="https://localhost").status_code == 403  # no CSRF token
    # And it logs in, as the README says: a token from /csrf, the form, /me.
    from coatcheck import create_user

    with app.test_request_context():  # type: ignore[attr-defined]
        create_user("alice", "correct horse battery")
    base = {"base_url": "https://localhost"}
    token = client.get("/csrf", **base).json["csrf_token"]
    form = {"username": "alice", "password": "correct horse battery"}
    logged_in = client.post("/login", data=form, headers={"X-CSRF-Token": token}, **base)
    assert logged_in.status_code == 200 and logged_in.json == {"user": "alice"}
    assert client.get("/me", **base).json == {"user": "alice"}
