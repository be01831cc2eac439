"""One signing key per shared store: a second instance with another key refuses to start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from coatcheck import CoatCheck
from coatcheck.auth.secret import key_fingerprint, recorded_fingerprint
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.passwords import PasswordHasher

KEY_A = "instance-a-secret-key-0123456789abcdef"
KEY_B = "instance-b-secret-key-0123456789abcdef"


@pytest.fixture
def instance(redis_url: str, clock: ManualClock, tmp_path: Path) -> Callable[..., Flask]:
    """Return a factory of apps in folders of their own, all on one Redis store."""
    count = 0

    def factory(**config: Any) -> Flask:
        nonlocal count
        count += 1
        app = Flask(__name__, instance_path=str(tmp_path / f"instance{count}"))
        app.config.update(
            {
                "TESTING": True,
                "COATCHECK_STORE_URL": redis_url,
                "COATCHECK_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
                **config,
            }
        )
        CoatCheck(app, clock=clock, hasher=PasswordHasher.fast_for_tests())
        CoatCheck.state(app).close()
        return app

    return factory


def test_an_instance_with_another_key_refuses_to_start(instance: Callable[..., Flask]) -> None:
    instance(SECRET_KEY=KEY_A)
    instance(SECRET_KEY=KEY_A)  # the same key: fine, as often as it starts
    with pytest.raises(ConfigurationError) as refused:
        instance(SECRET_KEY=KEY_B)
    message = str(refused.value)
    assert "SECRET_KEY differs" in message
    assert "same SECRET_KEY on every instance" in message
    assert "SECRET_KEY_FALLBACKS" in message
    assert KEY_A not in message and KEY_B not in message


def test_rotation_through_the_fallbacks_records_the_new_key(
    instance: Callable[..., Flask],
) -> None:
    first = instance(SECRET_KEY=KEY_A)
    instance(SECRET_KEY=KEY_B, SECRET_KEY_FALLBACKS=[KEY_A])
    store = CoatCheck.state(first).store
    assert recorded_fingerprint(store) == key_fingerprint(KEY_B.encode())
    instance(SECRET_KEY=KEY_B)  # the rotation is done: the old key can go
    with pytest.raises(ConfigurationError):
        instance(SECRET_KEY=KEY_A)  # and an instance left on the old key is told


def test_the_store_holds_a_fingerprint_never_the_key(
    instance: Callable[..., Flask], redis_client: Any
) -> None:
    app = instance(SECRET_KEY=KEY_A)
    prefix = app.config["COATCHECK_STORE_URL"].split("prefix=")[1]
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        if redis_client.type(key) == b"hash":
            values = b" ".join(redis_client.hvals(key))
            assert KEY_A.encode() not in values


def test_instances_of_a_sqlite_store_are_not_checked(tmp_path: Path, clock: ManualClock) -> None:
    for key in (KEY_A, KEY_B):  # one machine, one instance folder: nothing to compare
        app = Flask(__name__, instance_path=str(tmp_path / "instance"))
        app.config.update(
            SECRET_KEY=key,
            COATCHECK_STORE_URL=f"sqlite:///{tmp_path / 'sessions.db'}",
            COATCHECK_DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}",
        )
        CoatCheck(app, clock=clock)
        CoatCheck.state(app).close()
