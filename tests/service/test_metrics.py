"""``/metrics``: bounded labels, a bearer token, and one store count per kind per scrape."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from coatcheck import CoatCheck
from coatcheck.core.errors import ConfigurationError
from coatcheck.core.records import RecordKind, SessionRecord
from coatcheck.service.metrics import METHODS, TOKEN_FILE, method_label, status_label

from ..ext.auth_app import Browser
from ..ext.helpers import https_client
from .conftest import add_user
from .served import HttpClient, serve

TOKEN = "metrics-token-for-tests-0123456789abcdef"


@pytest.fixture
def app(make_service: Callable[..., Flask]) -> Flask:
    return make_service(COATCHECK_METRICS=True, COATCHECK_METRICS_TOKEN=TOKEN)


def scrape(client: FlaskClient, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Return the samples called ``name``, keyed by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_metrics_only_when_enabled(make_service: Callable[..., Flask], app: Flask) -> None:
    assert https_client(make_service()).get("/metrics").status_code == 404
    add_user(app, "alice")
    Browser(app).login("alice", "wrong password here")
    Browser(app).login("alice")
    text = scrape(https_client(app))
    assert "coatcheck_logins_total 1.0" in text
    assert "coatcheck_login_failures_total 1.0" in text
    assert "coatcheck_request_seconds_bucket" in text
    assert 'coatcheck_active_sessions{kind="session"} 1.0' in text


# -- bounded labels -----------------------------------------------------------------


def test_invented_methods_add_no_series(app: Flask) -> None:
    client = https_client(app)
    client.get("/healthz")
    before = scrape(client)
    for i in range(500):
        client.open("/healthz", method=f"X-INVENTED-{i}")
    after = scrape(client)
    counts = samples(after, "coatcheck_request_seconds_count")
    methods = {dict(labels)["method"] for labels in counts}
    assert methods <= METHODS | {"other"}
    assert counts[(("method", "other"), ("status", "405"))] == 500
    # A handful of new series at most (the "other" method, a 405, the scrapes): not 500.
    assert len(after) < 2 * len(before)


@pytest.mark.parametrize(
    ("method", "label"),
    [("GET", "GET"), ("DELETE", "DELETE"), ("get", "other"), ("BREW", "other"), ("", "other")],
)
def test_method_labels(method: str, label: str) -> None:
    assert method_label(method) == label


@pytest.mark.parametrize(
    ("status", "label"), [(200, "200"), (404, "404"), (503, "503"), (299, "other"), (999, "other")]
)
def test_status_labels(status: int, label: str) -> None:
    assert status_label(status) == label


# -- the token ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Basic " + TOKEN, 401),
        ("Bearer wrong", 403),
        ("Bearer " + TOKEN[:-1], 403),
        ("Bearer " + TOKEN + "x", 403),
        ("Bearer " + TOKEN.upper(), 403),
        ("Bearer \udcff", 403),
        ("Bearer " + TOKEN, 200),
        ("bearer  " + TOKEN, 200),
    ],
)
def test_metrics_need_the_token(app: Flask, authorization: str | None, status: int) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = https_client(app).get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json == {  # type: ignore[comparison-overlap]
            "error": "unauthenticated",
            "message": "Send the metrics bearer token.",
        }
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    if status == 403:
        assert response.json["error"] == "forbidden"  # type: ignore[index]
    if status != 200:
        assert "coatcheck_" not in response.get_data(as_text=True)


def test_a_short_token_is_refused_at_start(make_service: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="COATCHECK_METRICS_TOKEN is too short"):
        make_service(COATCHECK_METRICS=True, COATCHECK_METRICS_TOKEN="short")


def test_without_a_setting_a_token_is_generated_once_into_the_instance(
    make_service: Callable[..., Flask],
) -> None:
    first = make_service(COATCHECK_METRICS=True)
    path = Path(first.instance_path) / TOKEN_FILE
    token = path.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = make_service(COATCHECK_METRICS=True)  # another worker, or the next start
    assert path.read_text().strip() == token
    for app in (first, second):
        scrape(https_client(app), token)
        assert https_client(app).get("/metrics").status_code == 401


def test_no_token_file_when_metrics_are_off_or_the_token_is_set(
    make_service: Callable[..., Flask], app: Flask
) -> None:
    make_service()
    assert not (Path(app.instance_path) / TOKEN_FILE).exists()


# -- the active-session gauge ------------------------------------------------------------


def _record(key: str, kind: RecordKind, expires_at: float) -> SessionRecord:
    return SessionRecord(key, key, 0, 0, expires_at, kind=kind)


def test_active_sessions_are_counted_by_kind_once_per_scrape(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CoatCheck.state(app).store
    now = store.clock()
    planted = {RecordKind.SESSION: 2, RecordKind.REMEMBER: 3, RecordKind.TOKEN_FAMILY: 4}
    for kind, number in planted.items():
        for i in range(number):
            store.save(_record(f"{kind.value}-{i}", kind, now + 600))
        store.save(_record(f"{kind.value}-expired", kind, now - 1))
    store.save(_record("stamp", RecordKind.STAMP, now + 600))

    calls: list[Any] = []
    real_count = store.count

    def count(kind: RecordKind) -> int:
        calls.append(kind)
        return real_count(kind)

    def list_all(limit: int = 1000) -> list[SessionRecord]:
        raise AssertionError("a scrape must not list the store")

    monkeypatch.setattr(store, "count", count)
    monkeypatch.setattr(store, "list_all", list_all)
    text = scrape(https_client(app))
    assert samples(text, "coatcheck_active_sessions") == {
        (("kind", "session"),): 2.0,
        (("kind", "remember"),): 3.0,
        (("kind", "token-family"),): 4.0,
    }
    assert sorted(calls) == sorted(
        [RecordKind.SESSION, RecordKind.REMEMBER, RecordKind.TOKEN_FAMILY]
    )
    calls.clear()
    scrape(https_client(app))
    assert len(calls) == 3
    # Refused scrapes cost the store nothing.
    https_client(app).get("/metrics")
    https_client(app).get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert len(calls) == 3


def test_events_of_another_application_are_not_counted(
    make_service: Callable[..., Flask], app: Flask
) -> None:
    other = make_service()
    add_user(other, "bob")
    Browser(other).login("bob")
    assert "coatcheck_logins_total 0.0" in scrape(https_client(app))


def test_served_metrics_with_workers_want_the_instance_token(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    with serve(instance, "--metrics", "--workers", "2", COATCHECK_STORE_URL="memory://") as served:
        token = (instance / TOKEN_FILE).read_text().strip()
        client = HttpClient(served.port)
        assert client.request("GET", "/metrics").status == 401
        assert (
            client.request("GET", "/metrics", headers={"Authorization": "Bearer x"}).status == 403
        )
        for _ in range(4):  # both workers, most likely; each must count the store itself
            reply = client.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
            assert reply.status == 200, reply.body
            text = reply.body.decode()
            assert set(samples(text, "coatcheck_active_sessions")) == {
                (("kind", kind),) for kind in ("session", "remember", "token-family")
            }
            assert "coatcheck_request_seconds_count" in text
    log = next(tmp_path.glob("serve-*.log")).read_text()
    assert f"Bearer <the token in {instance / TOKEN_FILE}>" in log
