"""Settings: defaults, parsing of text values, refusal of bad values at start."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from coatcheck.core.errors import ConfigurationError
from coatcheck.core.settings import Settings


def test_defaults(tmp_path: Any) -> None:
    settings = Settings.from_config({}, instance_path=str(tmp_path))
    assert settings.cookie_secure is True
    assert settings.session_cookie_name == "__Host-session"
    assert settings.cookie_samesite == "Lax"
    assert settings.idle_timeout == 1800 and settings.absolute_timeout == 43200
    assert settings.touch_interval == 60
    assert settings.store_url == f"sqlite:///{tmp_path}/sessions.db"


def test_text_values_from_the_environment(tmp_path: Any) -> None:
    settings = Settings.from_config(
        {
            "COATCHECK_COOKIE_SECURE": "false",
            "COATCHECK_IDLE_TIMEOUT": "600",
            "COATCHECK_ABSOLUTE_TIMEOUT": timedelta(hours=2),
            "COATCHECK_STORE_URL": "memory://",
        },
        instance_path=str(tmp_path),
    )
    assert settings.cookie_secure is False
    assert settings.session_cookie_name == "session"
    assert settings.idle_timeout == 600 and settings.absolute_timeout == 7200
    assert settings.store_url == "memory://"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"COATCHECK_COOKIE_SAMESITE": "laxx"}, "must be one of"),
        ({"COATCHECK_COOKIE_SAMESITE": "None", "COATCHECK_COOKIE_SECURE": False}, "SameSite=None"),
        ({"COATCHECK_COOKIE_SECURE": "maybe"}, "true or false"),
        ({"COATCHECK_COOKIE_SECURE": False, "COATCHECK_COOKIE_NAME": "__Host-x"}, "__Host-"),
        ({"COATCHECK_IDLE_TIMEOUT": "soon"}, "number of seconds"),
        ({"COATCHECK_IDLE_TIMEOUT": 0}, "positive"),
        ({"COATCHECK_TOUCH_INTERVAL": 3600}, "below the idle timeout"),
        ({"COATCHECK_STORE_URL": 5}, "must be text"),
    ],
)
def test_bad_values_are_refused(tmp_path: Any, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_config(config, instance_path=str(tmp_path))
