"""Fuzz the Cookie header: session, remember-me and CSRF cookies, as a server gets them.

The input is the raw header (bytes, read as latin-1 as WSGI servers do). Each
input is sent to a small coatcheck app with one live session. A crash is a
5xx or an exception, a new store record, or a session other than "none"
unless the header names exactly the live session's ID.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["coatcheck", "harness"]):
    import harness

    from coatcheck import CoatCheck
    from coatcheck.core.ids import store_key
    from coatcheck.ext.session import cookie_values

APP = harness.library_app()
STORE = CoatCheck.state(APP).store
CLIENT = harness.client(APP, use_cookies=False)
RECORDS = harness.count_records(STORE)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    header = data.decode("latin-1")
    environ = {"HTTP_COOKIE": header}
    live = cookie_values(header, harness.SESSION) == [harness.LIVE_ID]

    read = CLIENT.get("/read", environ_overrides=environ)
    harness.check_no_server_error(read, header)
    expected = {"data": {"marker": "live"}, "user": harness.LIVE_USER_ID} if live else None
    harness.check(
        read.get_json() == (expected or {"data": {}, "user": None}), "wrong session", header
    )
    me = CLIENT.get("/api/me", environ_overrides=environ)  # may try a remember-me cookie
    harness.check(me.status_code == (200 if live else 401), "wrong /api/me", me.status, header)
    change = CLIENT.post("/change", environ_overrides=environ)  # no CSRF token
    harness.check(change.status_code == 403, "unsafe request not refused", change.status, header)
    harness.check(harness.count_records(STORE) == RECORDS, "the store changed", header)
    harness.check(STORE.get(store_key(harness.LIVE_ID)) is not None, "live session lost", header)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
