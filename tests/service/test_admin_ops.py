"""Admin API and pages: enable a user again, and the last admin stays one."""

from __future__ import annotations

from flask import Flask

from coatcheck import CoatCheck

from ..ext.auth_app import Browser
from .conftest import PASSWORD, add_user
from .test_api import error_of, logged_in


def test_admin_disables_and_enables_a_user_through_the_api(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    bob = add_user(service, "bob")
    disabled = admin.post(f"/api/admin/users/{bob}/disable")
    assert disabled.status_code == 200 and disabled.json["user"]["disabled"] is True  # type: ignore[index]
    assert Browser(service).login("bob", PASSWORD).status_code == 401
    enabled = admin.post(f"/api/admin/users/{bob}/enable")
    assert enabled.status_code == 200 and enabled.json["user"]["disabled"] is False  # type: ignore[index]
    assert Browser(service).login("bob", PASSWORD).status_code == 200
    assert admin.post("/api/admin/users/99/enable").status_code == 404
    events = [e.event for e in CoatCheck.state(service).users.list_events(limit=5)]
    assert "user_enabled" in events and "user_disabled" in events


def test_the_last_admin_cannot_disable_or_demote_themselves(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    root = CoatCheck.state(service).users.get_by_username("root")
    assert root is not None
    refused = admin.post(f"/api/admin/users/{root.id}/disable")
    assert refused.status_code == 409 and error_of(refused) == "last_admin"
    assert "root is the last active admin" in refused.json["message"]  # type: ignore[index]
    demoted = admin.post(f"/api/admin/users/{root.id}/roles", {"roles": ["staff"]})
    assert demoted.status_code == 409 and error_of(demoted) == "last_admin"
    assert CoatCheck.state(service).users.get(root.id).roles == ("admin",)  # type: ignore[union-attr]
    # With a second admin, the first may step down.
    add_user(service, "carol", "admin")
    stepped = admin.post(f"/api/admin/users/{root.id}/roles", {"roles": ["staff"]})
    assert stepped.status_code == 200


def test_a_disabled_admin_does_not_count(service: Flask) -> None:
    admin = logged_in(service, "root", "admin")
    other = add_user(service, "carol", "admin")
    assert admin.post(f"/api/admin/users/{other}/disable").status_code == 200
    root = CoatCheck.state(service).users.get_by_username("root")
    assert root is not None
    assert admin.post(f"/api/admin/users/{root.id}/disable").status_code == 409
