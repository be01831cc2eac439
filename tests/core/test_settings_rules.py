"""Settings: every rule at its boundary, every parser on every kind of value."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from coatcheck.core.errors import ConfigurationError
from coatcheck.core.records import LifetimePolicy
from coatcheck.core.settings import Settings, parse_flag


def build(tmp_path: Path, **config: Any) -> Settings:
    return Settings.from_config(config, instance_path=str(tmp_path))


def test_every_field_has_its_own_key_and_a_doc() -> None:
    fields = dataclasses.fields(Settings)
    keys = [f.metadata["key"] for f in fields]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("COATCHECK_") for k in keys)
    assert all(f.metadata["doc"] for f in fields)


def test_empty_paths_default_to_the_instance_folder(tmp_path: Path) -> None:
    settings = build(tmp_path / "inst")
    assert settings.store_url == f"sqlite:///{tmp_path}/inst/sessions.db"
    assert settings.database_url == f"sqlite:///{tmp_path}/inst/coatcheck.db"
    given = build(tmp_path, COATCHECK_STORE_URL="memory://", COATCHECK_DATABASE_URL="sqlite://")
    assert (given.store_url, given.database_url) == ("memory://", "sqlite://")


def test_a_relative_instance_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_config({}, instance_path="inst")
    assert settings.store_url == f"sqlite:///{tmp_path}/inst/sessions.db"


def test_none_means_the_default(tmp_path: Path) -> None:
    settings = build(tmp_path, COATCHECK_IDLE_TIMEOUT=None, COATCHECK_COOKIE_SAMESITE=None)
    assert settings.idle_timeout == 1800 and settings.cookie_samesite == "Lax"


def test_the_old_refresh_grace_key_still_counts(tmp_path: Path) -> None:
    assert build(tmp_path, COATCHECK_REFRESH_GRACE="12").rotation_grace == 12
    both = build(tmp_path, COATCHECK_REFRESH_GRACE="12", COATCHECK_ROTATION_GRACE="7")
    assert both.rotation_grace == 7
    assert build(tmp_path).rotation_grace == 30


@pytest.mark.parametrize(
    ("secure", "name", "expected"),
    [(True, "", "__Host-session"), (False, "", "session"), (True, "sid", "sid"), (False, "x", "x")],
)
def test_session_cookie_name(tmp_path: Path, secure: bool, name: str, expected: str) -> None:
    settings = build(tmp_path, COATCHECK_COOKIE_SECURE=secure, COATCHECK_COOKIE_NAME=name)
    assert settings.session_cookie_name == expected


def test_the_lifetime_policy(tmp_path: Path) -> None:
    settings = build(
        tmp_path,
        COATCHECK_IDLE_TIMEOUT=100,
        COATCHECK_ABSOLUTE_TIMEOUT=1000,
        COATCHECK_TOUCH_INTERVAL=10,
    )
    assert settings.lifetimes == LifetimePolicy(100, 1000, 10)
    assert settings.lifetimes is settings.lifetimes


@pytest.mark.parametrize("samesite", ["Lax", "Strict", "None"])
def test_each_samesite_is_accepted(tmp_path: Path, samesite: str) -> None:
    assert build(tmp_path, COATCHECK_COOKIE_SAMESITE=samesite).cookie_samesite == samesite


def test_samesite_none_with_a_secure_cookie(tmp_path: Path) -> None:
    assert build(tmp_path, COATCHECK_COOKIE_SAMESITE="None").cookie_secure is True
    insecure = build(tmp_path, COATCHECK_COOKIE_SECURE=False, COATCHECK_COOKIE_SAMESITE="Strict")
    assert insecure.cookie_samesite == "Strict"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"COATCHECK_COOKIE_SAMESITE": "nope"},
            r"must be one of Lax, Strict, None \(in any case\), not 'nope'",
        ),
        ({"COATCHECK_DATABASE_POOL_SIZE": 0}, "COATCHECK_DATABASE_POOL_SIZE must be at least 1"),
        ({"COATCHECK_DATABASE_POOL_SIZE": "2.5"}, "must be a whole number, not '2.5'"),
        ({"COATCHECK_DATABASE_POOL_SIZE": None, "COATCHECK_TRUSTED_PROXIES": -1}, "0 or more"),
        (
            {"COATCHECK_TRUSTED_PROXIES": ["10.0.0.0/33"]},
            "COATCHECK_TRUSTED_PROXIES takes a number",
        ),
        ({"COATCHECK_THROTTLE_ACCOUNT": "often"}, "COATCHECK_THROTTLE_ACCOUNT must be a rate"),
        ({"COATCHECK_THROTTLE_ACCOUNT_CEILING": "x"}, "COATCHECK_THROTTLE_ACCOUNT_CEILING must"),
        ({"COATCHECK_THROTTLE_ADDRESS": "x"}, "COATCHECK_THROTTLE_ADDRESS must be a rate like"),
        ({"COATCHECK_THROTTLE_REGISTER": "x"}, "COATCHECK_THROTTLE_REGISTER must be a rate"),
        ({"COATCHECK_CSRF_TRUSTED_ORIGINS": "app.example"}, "not 'app.example'"),
        ({"COATCHECK_CSRF_TRUSTED_ORIGINS": "ftp://app.example"}, "like https://host"),
        ({"COATCHECK_CSRF_TRUSTED_ORIGINS": "https://app.example/"}, "like https://host"),
        ({"COATCHECK_CSRF_TRUSTED_ORIGINS": "https://app.example/x"}, "like https://host"),
        ({"COATCHECK_JWT_LEEWAY": -1}, "COATCHECK_JWT_LEEWAY and COATCHECK_ROTATION_GRACE"),
        ({"COATCHECK_ROTATION_GRACE": -0.5}, "must be >= 0"),
        ({"COATCHECK_ABSOLUTE_TIMEOUT": 0}, "COATCHECK_ABSOLUTE_TIMEOUT must be a positive"),
        ({"COATCHECK_REMEMBER_LIFETIME": -1}, "COATCHECK_REMEMBER_LIFETIME must be a positive"),
        ({"COATCHECK_ACCESS_TOKEN_LIFETIME": 0}, "COATCHECK_ACCESS_TOKEN_LIFETIME must"),
        ({"COATCHECK_REFRESH_TOKEN_LIFETIME": 0}, "COATCHECK_REFRESH_TOKEN_LIFETIME must"),
        ({"COATCHECK_TOKEN_FAMILY_LIFETIME": 0}, "COATCHECK_TOKEN_FAMILY_LIFETIME must"),
        ({"COATCHECK_IDLE_TIMEOUT": -1}, "COATCHECK_IDLE_TIMEOUT must be a positive"),
        ({"COATCHECK_TOUCH_INTERVAL": -1}, "COATCHECK_TOUCH_INTERVAL must be at least 0"),
        ({"COATCHECK_TOUCH_INTERVAL": 1800}, "below the idle timeout"),
        ({"COATCHECK_IDLE_TIMEOUT": "1e999x"}, "COATCHECK_IDLE_TIMEOUT must be a number of"),
        ({"COATCHECK_IDLE_TIMEOUT": [1]}, "must be a number of seconds, not \\[1\\]"),
        ({"COATCHECK_COOKIE_SECURE": 2}, "COATCHECK_COOKIE_SECURE must be true or false, not 2"),
        ({"COATCHECK_JWT_ISSUER": b"x"}, "COATCHECK_JWT_ISSUER must be text, not bytes"),
    ],
)
def test_bad_values_are_refused_with_the_key(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_config(config, instance_path=str(tmp_path))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"COATCHECK_COOKIE_SAMESITE": "None", "COATCHECK_COOKIE_SECURE": False},
            "SameSite=None needs a secure cookie (browsers refuse it)",
        ),
        (
            {"COATCHECK_COOKIE_SECURE": False, "COATCHECK_COOKIE_NAME": "__Host-x"},
            "a __Host- cookie must be secure; choose another name",
        ),
        ({"COATCHECK_DATABASE_POOL_SIZE": 0}, "COATCHECK_DATABASE_POOL_SIZE must be at least 1"),
        ({"COATCHECK_TRUSTED_PROXIES": -1}, "COATCHECK_TRUSTED_PROXIES must be 0 or more"),
        (
            {"COATCHECK_JWT_LEEWAY": -1},
            "COATCHECK_JWT_LEEWAY and COATCHECK_ROTATION_GRACE must be >= 0",
        ),
        (
            {"COATCHECK_TOUCH_INTERVAL": -1},
            "COATCHECK_TOUCH_INTERVAL must be at least 0 and below the idle timeout",
        ),
        ({"COATCHECK_IDLE_TIMEOUT": 0}, "COATCHECK_IDLE_TIMEOUT must be a positive number"),
        (
            {"COATCHECK_THROTTLE_ADDRESS": "x"},
            "COATCHECK_THROTTLE_ADDRESS must be a rate like '5/15 minutes', not 'x'",
        ),
        (
            {"COATCHECK_CSRF_TRUSTED_ORIGINS": "a.example"},
            "COATCHECK_CSRF_TRUSTED_ORIGINS takes origins like https://host[:port], "
            "not 'a.example'",
        ),
    ],
)
def test_refusals_say_exactly_this(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_config(config, instance_path=str(tmp_path))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "config",
    [
        {"COATCHECK_DATABASE_POOL_SIZE": 1},
        {"COATCHECK_TRUSTED_PROXIES": 0},
        {"COATCHECK_JWT_LEEWAY": 0, "COATCHECK_ROTATION_GRACE": 0},
        {"COATCHECK_TOUCH_INTERVAL": 0},
        {"COATCHECK_TOUCH_INTERVAL": 1799.5},
        {"COATCHECK_CSRF_TRUSTED_ORIGINS": "http://a.example:8080 https://b.example"},
        {"COATCHECK_IDLE_TIMEOUT": 0.5, "COATCHECK_TOUCH_INTERVAL": 0.25},
    ],
)
def test_values_at_the_boundaries_are_accepted(tmp_path: Path, config: dict[str, Any]) -> None:
    Settings.from_config(config, instance_path=str(tmp_path))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example, https://b.example", ("https://a.example", "https://b.example")),
        (" https://a.example ,,https://b.example ", ("https://a.example", "https://b.example")),
        (["https://a.example", " https://b.example "], ("https://a.example", "https://b.example")),
        (("https://a.example", ""), ("https://a.example",)),
        ("", ()),
    ],
)
def test_trusted_origins_are_parsed(tmp_path: Path, value: Any, expected: tuple[str, ...]) -> None:
    settings = build(tmp_path, COATCHECK_CSRF_TRUSTED_ORIGINS=value)
    assert settings.csrf_trusted_origins == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("600", 600.0),
        (" 2.5 ", 2.5),
        (90, 90.0),
        (timedelta(minutes=5), 300.0),
        (timedelta(milliseconds=1500), 1.5),
    ],
)
def test_seconds_are_parsed(tmp_path: Path, value: Any, expected: float) -> None:
    settings = build(tmp_path, COATCHECK_REMEMBER_LIFETIME=value)
    assert settings.remember_lifetime == expected
    assert isinstance(settings.remember_lifetime, float)


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (" 3 ", 3), (4, 4), (True, 1)])
def test_whole_numbers_are_parsed(tmp_path: Path, value: Any, expected: int) -> None:
    settings = build(tmp_path, COATCHECK_DATABASE_POOL_SIZE=value)
    assert settings.database_pool_size == expected
    assert type(settings.database_pool_size) is int


@pytest.mark.parametrize("text", ["1", "true", "TRUE", " yes ", "On", True])
def test_true_flags(text: Any) -> None:
    assert parse_flag("K", text) is True


@pytest.mark.parametrize("text", ["0", "false", "False", " no", "OFF", False])
def test_false_flags(text: Any) -> None:
    assert parse_flag("K", text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "y", "t", None, 1.0])
def test_other_flags_are_refused(text: Any) -> None:
    with pytest.raises(ConfigurationError, match="^K must be true or false, not "):
        parse_flag("K", text)


def test_text_is_kept_as_given(tmp_path: Path) -> None:
    settings = build(tmp_path, COATCHECK_JWT_ISSUER=" spaced ", COATCHECK_COOKIE_NAME="sid")
    assert settings.jwt_issuer == " spaced " and settings.cookie_name == "sid"
