"""Unknown COATCHECK_* keys are named at start; Flask's own names are honoured."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coatcheck.core.errors import ConfigurationError
from coatcheck.core.settings import Settings, unknown_key_messages


def build(tmp_path: Path, **config: Any) -> Settings:
    return Settings.from_config(config, instance_path=str(tmp_path))


def test_a_mistyped_key_is_named_with_the_nearest_one() -> None:
    assert unknown_key_messages(["COATCHECK_STOR_URL", "COATCHECK_STORE_URL", "SECRET_KEY"]) == [
        "COATCHECK_STOR_URL is not a setting; did you mean COATCHECK_STORE_URL?"
    ]
    assert unknown_key_messages(["COATCHECK_ZZZ"]) == [
        "COATCHECK_ZZZ is not a setting (it is ignored)"
    ]
    assert unknown_key_messages(["COATCHECK_INSTANCE", "COATCHECK_LESSONS"]) == []


def test_unknown_keys_are_warned_about_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        build(tmp_path, COATCHECK_IDLE_TIMOUT=60)
    assert "did you mean COATCHECK_IDLE_TIMEOUT?" in caplog.text
    assert "COATCHECK_IDLE_TIMOUT is not a setting" in caplog.text


@pytest.mark.parametrize(
    ("given", "expected"), [("lax", "Lax"), ("STRICT", "Strict"), ("none", "None")]
)
def test_samesite_in_any_case(tmp_path: Path, given: str, expected: str) -> None:
    assert build(tmp_path, COATCHECK_COOKIE_SAMESITE=given).cookie_samesite == expected


def test_samesite_still_refuses_other_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="COATCHECK_COOKIE_SAMESITE must be one of"):
        build(tmp_path, COATCHECK_COOKIE_SAMESITE="sometimes")


def test_flask_permanent_session_lifetime_is_the_absolute_timeout(tmp_path: Path) -> None:
    assert build(tmp_path, PERMANENT_SESSION_LIFETIME=timedelta(hours=2)).absolute_timeout == 7200
    assert build(tmp_path, PERMANENT_SESSION_LIFETIME=3600).absolute_timeout == 3600
    both = build(tmp_path, PERMANENT_SESSION_LIFETIME=3600, COATCHECK_ABSOLUTE_TIMEOUT=600)
    assert both.absolute_timeout == 600
    # Flask's own default (31 days) is no choice of the application's.
    flask_default = Flask(__name__).config["PERMANENT_SESSION_LIFETIME"]
    assert build(tmp_path, PERMANENT_SESSION_LIFETIME=flask_default).absolute_timeout == 43200
