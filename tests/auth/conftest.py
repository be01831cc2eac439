"""Services built with no Flask at all: the protocols of auth/ on their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.auth.services import Services, build_services
from coatcheck.core.clock import ManualClock
from coatcheck.core.passwords import PasswordHasher
from coatcheck.core.settings import Settings

from ..conftest import TEST_SECRET_KEY


@pytest.fixture
def services(any_store_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[Services]:
    settings = Settings.from_config(
        {
            "COATCHECK_STORE_URL": any_store_url,
            "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
        },
        instance_path=str(tmp_path / "instance"),
    )
    built = build_services(
        settings,
        secret_key=TEST_SECRET_KEY,
        hasher=PasswordHasher.fast_for_tests(),
        clock=clock,
    )
    yield built
    built.close()
