"""``coatcheck serve`` answers real HTTP with the SPEC's session cookie."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import free_port, wait_for_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    instance = tmp_path / "instance"
    cli = Path(sys.executable).parent / "coatcheck"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATCHECK_")}
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--instance", str(instance)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
        yield port, instance
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert b"Traceback" not in stderr, stderr.decode(errors="replace")


def get(port: int, path: str, cookie: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_serve_sets_the_spec_session_cookie(served: tuple[int, Path]) -> None:
    port, instance = served
    first = get(port, "/")
    assert first.status == 200
    [header] = first.headers.get_all("Set-Cookie")
    pair, *attributes = (part.strip() for part in header.split(";"))
    name, _, value = pair.partition("=")
    assert name == "__Host-session" and len(value) == 43
    assert sorted(a.lower() for a in attributes) == ["httponly", "path=/", "samesite=lax", "secure"]
    assert (instance / "sessions.db").is_file()

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/session", headers={"Cookie": f"{name}={value}"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    assert body["visits"] == 1 and len(body["handle"]) == 32
    assert value not in json.dumps(body)
