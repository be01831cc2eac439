"""Log lines carry the client's text only escaped: no forged lines."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask

from ..ext.helpers import https_client
from .conftest import add_user


def test_a_path_with_newlines_makes_one_csrf_log_line(
    service: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "%0a%0d2026-01-01 INFO coatcheck.audit: security event login_succeeded user=1"
    with caplog.at_level(logging.WARNING):
        response = https_client(service).delete(f"/api/sessions/x{forged}")
    assert response.status_code == 403
    [record] = [r for r in caplog.records if "CSRF check failed" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message
    assert "/api/sessions/x\\n\\r2026-01-01" in message


def test_a_forwarded_address_is_escaped_in_the_audit_line(
    make_service: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_service(COATCHECK_TRUSTED_PROXIES=1)
    add_user(app, "alice")
    client = https_client(app)
    token = client.get("/api/csrf").json["csrf_token"]  # type: ignore[index]
    with caplog.at_level(logging.INFO, logger="coatcheck.audit"):
        client.post(
            "/api/login",
            json={"username": "alice\x1b[2J", "password": "wrong password here"},
            headers={"X-CSRF-Token": token, "X-Forwarded-For": "1.2.3.4\x1b[31m"},
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "coatcheck.audit"]
    assert lines and all(line.isprintable() for line in lines)
    assert any("username='alice\\x1b[2J'" in line for line in lines)
