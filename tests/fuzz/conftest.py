"""Fixtures of the fuzzing properties: apps built once per test, examples share them.

Hypothesis runs a test's examples against one set of fixtures, so every
property here is written to hold whatever the earlier examples did: it
counts store records before and after, and never logs its fixtures out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, session
from hypothesis import HealthCheck, settings
from itsdangerous import URLSafeTimedSerializer

from coatcheck import CoatCheck, current_user
from coatcheck.core.csrf import new_secret
from coatcheck.core.ids import store_key
from coatcheck.core.records import SessionRecord
from coatcheck.core.signing import signing_keys

from ..conftest import TEST_SECRET_KEY
from ..ext.auth_app import build_auth_app
from ..service.conftest import make_service as make_service  # the service app factory

SESSION = "__Host-session"
REMEMBER = "__Host-remember"
CSRF = "__Host-csrf"
#: The ID of the one live session of :func:`library_app`: shaped like any other.
LIVE_ID = "fuzzLiveSession-0123456789_abcdefghijklmnop"
LIVE_USER_ID = "7"
assert len(LIVE_ID) == 43
#: The signing keys of every app here (TEST_SECRET_KEY, no fallbacks).
KEYS = signing_keys(TEST_SECRET_KEY)


def bounded(max_examples: int) -> settings:
    """Return the settings of a property: bounded, deterministic, no example database.

    The fixtures are built once per test and shared by its examples on purpose
    (building an app per example would cost more than the example).
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@pytest.fixture
def store_kind() -> str:
    """Fuzz on the memory store: these tests are about parsing, the store sees only hashes."""
    return "memory"


def add_live_session(app: Flask) -> SessionRecord:
    """Store the session :data:`LIVE_ID` names: logged in, with one data key."""
    state = CoatCheck.state(app)
    record = state.lifetimes.new_record(
        store_key(LIVE_ID),
        state.clock(),
        user_id=LIVE_USER_ID,
        data={"marker": '"live"'},
        meta={"username": "fuzzer", "roles": [], "csrf": new_secret()},
    )
    state.store.save(record)
    return record


@pytest.fixture
def library_app(make_app: Callable[..., Flask]) -> Flask:
    """The login test app, a ``/read`` view, and one live session (:data:`LIVE_ID`)."""
    app = build_auth_app(make_app)

    @app.get("/read")
    def read() -> Any:
        return jsonify(data=dict(session), user=current_user.id)

    add_live_session(app)
    return app


def sign_as(purpose: str, value: str) -> str:
    """Sign ``value`` as the app's signer for ``purpose`` does, lone surrogates included.

    Only someone holding SECRET_KEY can make such a cookie: defence in depth.
    Python's ``json`` escapes lone surrogates, where the signer's own JSON cannot.
    """
    serializer = URLSafeTimedSerializer(KEYS, salt=f"coatcheck.{purpose}", serializer=json)
    return str(serializer.dumps(value))


def sign_remember(value: str) -> str:
    """Sign ``value`` as the app's remember-me signer does (see :func:`sign_as`)."""
    return sign_as("remember", value)
