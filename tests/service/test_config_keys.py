"""The service warns about unknown COATCHECK_* keys from every source."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coatcheck.service.config import load_config


@pytest.mark.parametrize("source", ["environment", "toml", "config"])
def test_the_service_warns_about_unknown_keys_from_every_source(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make_service: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    given: dict[str, Any] = {}
    if source == "environment":
        monkeypatch.setenv("COATCHECK_STOR_URL", "memory://")
    elif source == "toml":
        toml = tmp_path / "settings.toml"
        toml.write_text('COATCHECK_STOR_URL = "memory://"\n')
        given["COATCHECK_CONFIG"] = str(toml)
    else:
        given["COATCHECK_STOR_URL"] = "memory://"
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        make_service(**given)
    assert "COATCHECK_STOR_URL is not a setting; did you mean COATCHECK_STORE_URL?" in caplog.text


def test_load_config_keeps_keys_for_the_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_config({}, environ={"COATCHECK_STOR_URL": "redis://x"})
    assert loaded["COATCHECK_STOR_URL"] == "redis://x"
