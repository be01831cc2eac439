"""Fixtures for the service: an app on a fresh instance, clients, users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.core.passwords import PasswordHasher
from coatcheck.service import create_app

from ..conftest import TEST_SECRET_KEY

PASSWORD = "correct horse battery"


@pytest.fixture
def make_service(tmp_path: Path) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": TEST_SECRET_KEY,
                "COATCHECK_INSTANCE": str(tmp_path / "instance"),
                "COATCHECK_STORE_URL": "memory://",
                "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
                **config,
            }
        )
        CoatCheck.state(app).hasher = PasswordHasher.fast_for_tests()
        return app

    return factory


@pytest.fixture
def service(make_service: Callable[..., Flask]) -> Flask:
    return make_service()


def add_user(app: Flask, name: str, *roles: str) -> int:
    state = CoatCheck.state(app)
    user = state.users.create_user(name, state.hasher.hash(PASSWORD), roles=roles)
    return user.id
