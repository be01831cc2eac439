"""``coatcheck check``'s look at the backends: reach each one, create nothing.

A SQLite file that does not exist yet is not created: the check says where
it will be. Every other backend is connected to and asked a trivial question;
a failure names host, port and reason, never a password.
"""

from __future__ import annotations

import os
import re
import sqlite3
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..auth.secret import is_shared_store as is_shared  # noqa: F401 - used by review
from ..auth.secret import key_fingerprint, recorded_fingerprint
from ..auth.throttle import open_storage, ratelimit_url_for
from ..core.clock import system_clock
from ..core.errors import CoatcheckError
from ..core.settings import Settings
from ..stores.base import open_store
from ..stores.sqlite_throttle import MEMORY, SCHEME

__all__ = [
    "describe_url",
    "is_shared",
    "probe_database",
    "probe_signing_key",
    "probe_store",
    "probe_throttle",
]

Finding = tuple[str, str]

_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "postgresql": 5432, "postgres": 5432}
_SECRET_OPTIONS = {"password", "pass", "passwd"}


def describe_url(url: str) -> str:
    """Return ``url`` with host, port and options, and every password masked."""
    if url.startswith("sqlite:"):
        return url  # a path, and sqlite:////absolute would lose a slash below
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    base = parts.scheme.partition("+")[0]
    if hosts and "," not in hosts and not re.search(r":\d+$", hosts) and base in _DEFAULT_PORTS:
        hosts = f"{hosts}:{_DEFAULT_PORTS[base]}"
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_OPTIONS else v) for k, v in parse_qsl(parts.query)],
        safe=":/*",
    )
    netloc = f"{userinfo}@{hosts}" if at else hosts
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _sqlite(name: str, path: str) -> Finding:
    """Open an existing SQLite file read-only, or say where a missing one will be made."""
    if not os.path.exists(path):
        folder = os.path.dirname(path) or "."
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        if os.access(folder, os.W_OK):
            return ("ok", f"{name}: {path} does not exist yet; it is created at the first start")
        return ("problem", f"{name}: {path} cannot be created ({folder} is not writable)")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return ("problem", f"{name}: {path} cannot be read: {exc}")
    finally:
        conn.close()
    return ("ok", f"{name}: {path} opens")


def probe_store(url: str) -> Finding:
    """Return what reaching the session store says."""
    name = "session store"
    if url.startswith("sqlite:///"):
        return _sqlite(name, url[len("sqlite:///") :])
    try:
        store = open_store(url, clock=system_clock)
        try:
            store.ping()
        finally:
            store.close()
    except CoatcheckError as exc:
        return ("problem", f"{name} at {describe_url(url)} is unreachable: {exc}")
    return ("ok", f"{name} at {describe_url(url)} answers")


def probe_database(url: str) -> Finding:
    """Return what connecting to the user database says."""
    name = "user database"
    if url.startswith("sqlite:///"):
        return _sqlite(name, url[len("sqlite:///") :].partition("?")[0])
    from ..users import UserStore

    try:
        users = UserStore(url, pool_size=1)
        try:
            users.ping()
        finally:
            users.close()
    except CoatcheckError as exc:
        return ("problem", f"{name} at {describe_url(url)} is unreachable: {exc}")
    return ("ok", f"{name} at {describe_url(url)} answers")


def probe_throttle(settings: Settings) -> Finding:
    """Return what reaching the login throttle's counters says."""
    name = "throttle counters"
    url = settings.ratelimit_url or ratelimit_url_for(settings.store_url)[0]
    if url.startswith(f"{SCHEME}:///"):
        path = url[len(f"{SCHEME}:///") :]
        if path == MEMORY:
            return ("ok", f"{name}: in each process's memory")
        return _sqlite(name, path)
    if url.startswith("memory://"):
        return ("ok", f"{name}: in each process's memory (not shared between workers)")
    try:
        storage = open_storage(url)
        healthy = storage.check()
    except Exception as exc:  # noqa: BLE001 - the limits library's errors may quote the URL
        return ("problem", f"{name} at {describe_url(url)} are unreachable ({type(exc).__name__})")
    if not healthy:
        return ("problem", f"{name} at {describe_url(url)} do not answer")
    return ("ok", f"{name} at {describe_url(url)} answer")


def probe_signing_key(url: str, keys: list[bytes]) -> Finding | None:
    """Compare the signing key with the fingerprint a shared store holds, if any."""
    if not is_shared(url):
        return None
    try:
        store = open_store(url, clock=system_clock)
        try:
            theirs = recorded_fingerprint(store)
        finally:
            store.close()
    except CoatcheckError:
        return None  # the store's own finding says why
    if theirs is None:
        return ("ok", "the session store holds no signing-key fingerprint yet")
    if theirs == key_fingerprint(keys[-1]):
        return ("ok", "SECRET_KEY is the one the other instances on this store sign with")
    if theirs in {key_fingerprint(k) for k in keys}:
        return ("ok", "SECRET_KEY_FALLBACKS hold the store's key: this instance rotates it")
    return (
        "problem",
        "SECRET_KEY differs from the one the other instances on this store sign with: "
        "set the same SECRET_KEY on every instance (this one would refuse to start)",
    )
