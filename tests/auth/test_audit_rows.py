"""Every audit row names its user; events that want attention are logged at WARNING."""

from __future__ import annotations

import logging

import pytest

from coatcheck.auth.client import Client
from coatcheck.auth.devices import Device
from coatcheck.auth.services import Services
from coatcheck.core.clock import ManualClock
from coatcheck.core.errors import InvalidCredentials, Throttled
from coatcheck.users import models as events

PASSWORD = "correct horse battery"
HERE = Client(ip="192.0.2.1", user_agent="test")
AUDIT = "coatcheck.audit"


def _rows(services: Services, event: str) -> list[events.AuditEvent]:
    return [e for e in services.users.list_events(limit=100) if e.event == event]


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_revocations_name_the_user(services: Services, clock: ManualClock) -> None:
    user = services.accounts.create_user("alice", PASSWORD)
    issued = services.remember.issue(str(user.id), 0, HERE)
    handle = services.devices.of_user(user.id)[0].handle
    assert services.devices.revoke(user.id, handle, client=HERE)
    services.remember.issue(str(user.id), 0, HERE)
    services.devices.revoke_all(user.id, client=HERE)
    services.remember.issue(str(user.id), 0, HERE)
    services.devices.revoke_others(user.id, Device(), client=HERE)
    [revoked] = _rows(services, events.SESSION_REVOKED)
    assert (revoked.user_id, revoked.username) == (user.id, "alice")
    for row in _rows(services, events.ALL_SESSIONS_REVOKED):
        assert (row.user_id, row.username) == (user.id, "alice")
    assert issued.cookie


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_remember_theft_is_a_warning_that_names_the_user(
    services: Services, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    user = services.accounts.create_user("alice", PASSWORD)
    issued = services.remember.issue(str(user.id), 0, HERE)
    assert services.remember.use(issued.cookie, HERE) is not None
    clock.advance(services.settings.rotation_grace + 1)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        assert services.remember.use(issued.cookie, HERE) is None  # the old cookie: stolen
    [theft] = _rows(services, events.REMEMBER_THEFT)
    assert theft.username == "alice"
    [line] = [
        r for r in caplog.records if r.name == AUDIT and "remember_token_theft" in r.msg % r.args
    ]
    assert line.levelno == logging.WARNING
    assert "username='alice'" in line.getMessage()


@pytest.mark.parametrize("store_kind", ["sqlite"], indirect=True)
def test_throttling_is_a_warning_and_a_login_an_info(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    services.accounts.create_user("alice", PASSWORD)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        services.accounts.authenticate("alice", PASSWORD, HERE)
        with pytest.raises(Throttled):
            for _ in range(10):
                try:
                    services.accounts.authenticate("alice", "a wrong password", HERE)
                except InvalidCredentials:
                    continue
    levels = {r.getMessage().split()[2]: r.levelno for r in caplog.records if r.name == AUDIT}
    assert levels["login_throttled"] == logging.WARNING
    assert levels["login_failed"] == logging.INFO
